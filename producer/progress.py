"""Human-readable job status: one-line progress bar, full status block, summary table."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from framefleet.core.jobstate import JobRecord, JobStore


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = round(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def progress_line(record: JobRecord, width: int = 30) -> str:
    """``[#####.....] 120/300 done 2 failed  6.1 items/s  ETA 0:29  running``."""
    total = record.total if record.listed else max(record.total, 1)
    share = record.processed / total if total else 1.0
    filled = round(width * min(share, 1.0))
    listing = "" if record.listed else "+ (listing)"
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {record.processed}/{record.total}{listing} "
        f"done {record.done} failed {record.failed}  {record.rate():.1f} items/s  "
        f"ETA {_duration(record.eta_s())}  {record.status.value}"
    )


def status_block(record: JobRecord) -> str:
    """Everything `framefleet status` prints about one job."""
    lines = [
        f"job       {record.job_id}  ({record.status.value})",
        f"model     {record.model}",
        f"input     {record.input_uri}",
        f"output    {record.output_uri}",
        f"items     {record.total}{'' if record.listed else ' so far (still listing)'}: "
        f"{record.done} done, {record.failed} failed, {record.total - record.processed} pending",
        f"elapsed   {_duration(record.elapsed_s())}   "
        f"ETA {_duration(record.eta_s()) if not record.finished else '-'}",
        f"speed     {record.rate():.2f} items/s, {record.frame_rate():.1f} images/s "
        f"({record.frames} images and video frames done)",
    ]
    if record.error:
        lines.append(f"error     {record.error}")
    return "\n".join(lines)


def summary_table(record: JobRecord, failures: list[tuple[str, dict[str, object]]]) -> str:
    """Per-class counts, failures with reasons, and throughput."""
    lines = [status_block(record), "", "detections per class:"]
    if record.classes:
        width = max(len(name) for name in record.classes)
        lines += [f"  {name:<{width}}  {count:>6}" for name, count in record.classes.items()]
    else:
        lines.append("  (none)")
    lines.append(f"failures: {record.failed}")
    for item, reason in failures[:20]:
        lines.append(f"  {item}: {reason.get('error')}: {reason.get('message')}")
    if len(failures) > 20:
        lines.append(f"  ... {len(failures) - 20} more in _framefleet/failures.jsonl")
    return "\n".join(lines)


def watch(
    jobs: JobStore,
    job_id: str,
    out: TextIO = sys.stderr,
    interval_s: float = 0.5,
    timeout_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> JobRecord:
    """Redraw the progress line until the job finishes (or ``timeout_s`` passes); return the
    last record."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    tty = out.isatty()
    while True:
        record = jobs.get(job_id)
        line = progress_line(record)
        out.write(("\r" + line + "\033[K") if tty else line + "\n")
        out.flush()
        if record.finished or (deadline is not None and time.monotonic() > deadline):
            if tty:
                out.write("\n")
            return record
        sleep(interval_s if tty else max(interval_s, 5.0))
