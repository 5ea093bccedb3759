"""Child processes with a log file: `framefleet worker` and Flower, for the demo, tests and
benchmarks."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from framefleet.core.errors import ConfigError

FRAMEFLEET = [sys.executable, "-m", "framefleet.cli"]
"""How to run the ``framefleet`` command with this interpreter."""

WORKER_READY = " ready."
"""What Celery logs once a worker consumes its queues."""


class LoggedProcess:
    """A child process in its own session whose output goes to ``log_path``."""

    def __init__(
        self,
        name: str,
        cmd: list[str],
        env: dict[str, str],
        log_path: Path,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        """Everything the process printed so far."""
        return self.log_path.read_text(errors="replace")

    def wait_for(self, marker: str, timeout_s: float) -> LoggedProcess:
        """Block until ``marker`` appears in the log.

        Raises:
            ConfigError: the process exited or ``timeout_s`` passed; the message has the log tail.
        """
        deadline = time.monotonic() + timeout_s
        while marker not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(self.log().splitlines()[-40:])
                state = "exited" if self.process.poll() is not None else "not ready"
                self.kill()
                raise ConfigError(f"{self.name} {state} after {timeout_s:.0f} s; log tail:\n{tail}")
            time.sleep(0.1)
        return self

    def stop(self, timeout_s: float = 30) -> None:
        """SIGTERM (Celery: warm shutdown, the task finishes), SIGKILL after ``timeout_s``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout_s)
        self.kill()  # whatever is left of its process group

    def kill(self) -> None:
        """SIGKILL the whole process group at once (a crash, not a shutdown)."""
        with contextlib.suppress(ProcessLookupError):  # the group is gone already
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def start_worker(
    name: str,
    env: dict[str, str],
    log_dir: Path,
    *args: str,
    ready_timeout_s: float = 120,
    cwd: Path | None = None,
) -> LoggedProcess:
    """Start ``framefleet worker -n NAME@%h ARGS`` and wait until Celery says it is ready."""
    cmd = [*FRAMEFLEET, "worker", "-n", f"{name}@%h", *args]
    worker = LoggedProcess(f"worker {name}", cmd, env, log_dir / f"worker-{name}.log", cwd)
    return worker.wait_for(WORKER_READY, ready_timeout_s)
