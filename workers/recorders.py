"""The one road an outcome takes to the job state: an image recorder and a video recorder.

An image message's outcomes wait in its `ImageRecorder` and reach Redis in one call per message
(`JobStore.record_many`, which releases the lease in the same call), or every `FLUSH_S` seconds
in a long message so progress stays live. A video unit's outcome is recorded at once by its
`VideoRecorder`: a failed segment or merge through the video task's hook (the segment barrier
fails the video), anything else in the job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from framefleet.inference.pipeline import ItemResult
from framefleet.state.jobs import JobStore, Outcome
from framefleet.state.leases import LeaseStore

FLUSH_S = 1.0
"""Longest time an image outcome waits before it is recorded (live progress)."""

FailHook = Callable[[ItemResult], tuple[bool, bool]]
"""Records the failure of a video unit: (it failed its video now, that ended the job)."""


class OutcomeRecorder(Protocol):
    """Takes a message's outcomes to the job state."""

    def record(self, result: ItemResult) -> tuple[bool, bool]:
        """Record ``result`` (now, or with the message): (it counts in the job, the job ended)."""
        ...

    def flush(self, release: bool) -> bool:
        """Record what waits; with ``release`` the message is finished and its lease released.
        True if that ended the job."""
        ...


def outcome(result: ItemResult) -> Outcome:
    """The job state's view of ``result``."""
    return Outcome(result.item, result.ok, result.reason(), result.classes, result.frames)


class ImageRecorder:
    """Outcomes of one image message, recorded together."""

    def __init__(self, jobs: JobStore, job_id: str, lease_id: str) -> None:
        self.jobs = jobs
        self.job_id = job_id
        self.lease_id = lease_id
        self._pending: list[Outcome] = []
        self._flushed_at = time.monotonic()
        # The task's thread records; the pipeline's reader thread may flush (a suspect's outcome
        # before the next suspect starts alone).
        self._lock = threading.Lock()

    def record(self, result: ItemResult) -> tuple[bool, bool]:
        with self._lock:
            self._pending.append(outcome(result))
        ended = False
        if time.monotonic() - self._flushed_at >= FLUSH_S:
            ended = self.flush(release=False)
        return True, ended

    def flush(self, release: bool) -> bool:
        with self._lock:
            self._flushed_at = time.monotonic()
            if not self._pending and not release:
                return False
            lease = self.lease_id if release else ""
            decided = self.jobs.record_many(self.job_id, self._pending, lease)
            self._pending = []
        return decided.completed or decided.stopped


class VideoRecorder:
    """The outcome of one video unit (a plan, a segment, a merge), recorded at once."""

    def __init__(
        self,
        jobs: JobStore,
        leases: LeaseStore,
        job_id: str,
        lease_id: str,
        fail: FailHook | None,
    ) -> None:
        self.jobs = jobs
        self.leases = leases
        self.job_id = job_id
        self.lease_id = lease_id
        self.fail = fail

    def record(self, result: ItemResult) -> tuple[bool, bool]:
        if not result.ok and self.fail is not None:
            return self.fail(result)
        decided = self.jobs.record_many(self.job_id, [outcome(result)])
        return True, decided.completed or decided.stopped

    def flush(self, release: bool) -> bool:
        if release:
            self.leases.release(self.lease_id)
        return False
