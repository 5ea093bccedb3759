"""Process figures read from /proc: a process group's or a parent's processes, peak RSS, CPU
seconds; used by the benchmarks and the fault tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def _live_stats() -> Iterator[tuple[int, list[str]]]:
    # (pid, the /proc/PID/stat fields after the command name: state, ppid, pgrp, ...) of every
    # process still there; one that exits mid-walk is passed over.
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        yield int(entry.name), stat[stat.rindex(")") + 2 :].split()


def group_pids(pgid: int) -> list[int]:
    """Live processes of process group ``pgid``."""
    return [pid for pid, fields in _live_stats() if int(fields[2]) == pgid]


def child_pids(parent: int) -> list[int]:
    """Live (not zombie) children of ``parent``, such as a Celery worker's pool processes."""
    return [pid for pid, fields in _live_stats() if int(fields[1]) == parent and fields[0] != "Z"]


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) of ``pid``, MB; 0.0 if it is gone."""
    return _status_mb(pid, "VmHWM:")


def rss_mb(pid: int) -> float:
    """Resident set size now (VmRSS) of ``pid``, MB; 0.0 if it is gone."""
    return _status_mb(pid, "VmRSS:")


def _status_mb(pid: int, field: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used (0.0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pids_matching(text: str) -> list[int]:
    """Processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
