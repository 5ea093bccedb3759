"""framefleet itself, timed as a user runs it: workers up and warm, then `submit` of a folder or
prefix and the same wait `submit --wait` does, wall from submit to return."""

from __future__ import annotations

import io
import json
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from benchmarks.procstats import cpu_seconds, group_pids, peak_rss_mb
from framefleet.core.outputs import report_key
from framefleet.core.settings import Settings
from framefleet.core.storage import open_storage
from framefleet.queue import create_app
from framefleet.report import REPORT_PAGE
from framefleet.services.processes import LoggedProcess, start_worker
from framefleet.state.jobs import JobStore
from producer.progress import watch
from producer.submit import submit


@dataclass(frozen=True)
class FleetRun:
    """One timed job: wall seconds, items, per-item service times (ms) and the job's own rate."""

    wall_s: float
    items: int
    latencies_ms: list[float]
    server_cpu_s: float = 0.0
    """CPU seconds the storage server's processes used during the wall (0.0 if none given)."""

    @property
    def rate(self) -> float:
        return self.items / self.wall_s

    def percentile(self, q: float) -> float:
        """The ``q`` quantile (0..1) of the per-item service times, ms."""
        if len(self.latencies_ms) < 2:
            return self.latencies_ms[0] if self.latencies_ms else 0.0
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[int(q * 100) - 1]


class Fleet:
    """One `framefleet worker` node with ``processes`` worker processes on one engine."""

    def __init__(
        self, settings: Settings, workdir: Path, processes: int, engine: str, env: dict[str, str]
    ) -> None:
        self.settings = settings
        self.workdir = workdir
        self.processes = processes
        self.engine = engine
        self.env = {**os.environ, **settings.to_env(), **env}
        self.worker: LoggedProcess | None = None

    def __enter__(self) -> Fleet:
        args = ["--concurrency", str(self.processes), "--engine", self.engine]
        self.worker = start_worker(f"bench-{self.engine}", self.env, self.workdir, *args)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.worker is not None:
            self.worker.stop()

    def peak_rss_mb(self) -> float:
        """The largest peak RSS among the node's worker processes (its pool children)."""
        assert self.worker is not None
        children = [p for p in group_pids(self.worker.pid) if p != self.worker.pid]
        return max((peak_rss_mb(p) for p in children), default=0.0)

    def run(
        self,
        input_uri: str,
        output_uri: str,
        model: str,
        batch_size: int,
        server_pids: Sequence[int] = (),
    ) -> FleetRun:
        """Submit ``input_uri`` and wait as ``submit --wait`` does; wall from submit to return
        (and the CPU time of ``server_pids`` over that wall)."""
        settings = self.settings.with_(batch_size=batch_size)
        app = create_app(settings)
        jobs = JobStore.from_url(settings.redis_url)
        quiet = Console(file=io.StringIO())
        server_cpu = sum(cpu_seconds(p) for p in server_pids)
        start = time.perf_counter()
        result = submit(settings, app, input_uri, output_uri, model)
        record = watch(jobs, result.job_id or "", console=quiet)
        wall = time.perf_counter() - start
        server_cpu = sum(cpu_seconds(p) for p in server_pids) - server_cpu
        if record.failed or record.done != result.items:
            failures = list(jobs.failures(record.job_id))[:3]
            raise SystemExit(f"job {record.job_id}: {record.failed} failed: {failures}")
        _wait_for_report(output_uri)
        return FleetRun(wall, result.items, _latencies(output_uri), server_cpu)

    def warm_up(self, input_uri: str, output_uri: str, model: str, batch_size: int) -> None:
        """One untimed job of the warm-up images at the timed jobs' message size, so every
        worker process has loaded its model, opened its clients and run full forward batches
        (a running fleet has done other jobs before), as the limit's processes do first."""
        self.run(input_uri, output_uri, model, batch_size)


def _wait_for_report(output_uri: str, timeout_s: float = 60.0) -> None:
    """Wait (untimed) for the report page the worker writes just after the job completes, so
    its reads and thumbnails never run inside the next row's measurement."""
    dst = open_storage(output_uri)
    deadline = time.monotonic() + timeout_s
    while not dst.exists(report_key(REPORT_PAGE)):
        if time.monotonic() > deadline:
            raise SystemExit(f"no report page under {output_uri} {timeout_s:.0f} s after the job")
        time.sleep(0.05)


def _latencies(output_uri: str) -> list[float]:
    """Per-item service time (sum of the stage timings of each result document under a fresh
    output root), ms."""
    dst = open_storage(output_uri)
    out = []
    for obj in dst.list():
        if obj.key.endswith(".json") and not obj.key.startswith("_framefleet"):
            document = json.loads(dst.read_bytes(obj.key))
            out.append(sum(document.get("timings_ms", {}).values()))
    return out
