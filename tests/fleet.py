"""Real `framefleet worker` processes for end-to-end tests, and polling helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from framefleet.core.jobrecord import JobRecord
from framefleet.core.settings import Settings
from framefleet.core.storage import Storage
from framefleet.services.processes import LoggedProcess, start_worker
from framefleet.state.jobs import JobStore

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Fleet:
    """Starts `framefleet worker` processes (concurrency 1 each) against the test's settings."""

    settings: Settings
    tmp: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    workers: list[LoggedProcess] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEFLEET_")}
        return {**env, **self.settings.to_env(), **self.extra_env, "PYTHONUNBUFFERED": "1"}

    def start(self, name: str, *args: str) -> LoggedProcess:
        """Start worker ``name`` (node ``name@%h``) and wait until Celery says it is ready."""
        worker = start_worker(name, self.env(), self.tmp, "--concurrency", "1", *args, cwd=REPO)
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop(timeout_s=20)


def wait_for_job(
    store: JobStore,
    job_id: str,
    timeout_s: float = 180,
    until: Callable[[JobRecord], bool] = lambda r: r.finished,
) -> JobRecord:
    """Poll the job until ``until`` holds; fail with the last record after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        record = store.get(job_id)
        if until(record):
            return record
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} not finished after {timeout_s} s: {record}")
        time.sleep(0.2)


def cli(*args: str) -> list[str]:
    """The command line of ``framefleet ARGS`` run by this interpreter."""
    return [sys.executable, "-m", "framefleet.cli", *args]


def run_cli(
    settings: Settings, *args: str, env: dict[str, str] | None = None, timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``framefleet ARGS`` in a child process with the test's settings in its environment."""
    full_env = {**Fleet(settings, REPO).env(), **(env or {})}
    return subprocess.run(
        cli(*args),
        env=full_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def wait_for_object(storage: Storage, key: str, timeout_s: float = 60) -> bytes:
    """The object's bytes once it exists: job reports are written just after the job's last
    outcome is recorded, so a test that saw the job finish may still be ahead of them."""
    deadline = time.monotonic() + timeout_s
    while not storage.exists(key):
        if time.monotonic() > deadline:
            raise AssertionError(f"{storage.uri_for(key)} not written after {timeout_s} s")
        time.sleep(0.2)
    return storage.read_bytes(key)
