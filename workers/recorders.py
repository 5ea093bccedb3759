"""The one road an outcome takes to the job state: an image recorder and a video recorder.

An image message's outcomes wait in its `ImageRecorder` and reach Redis in one call per message
(`JobStore.record_many`, which releases the lease in the same call), or every `FLUSH_S` seconds
in a long message so progress stays live. A video unit's outcome is recorded at once by its
`VideoRecorder`: a failed segment or merge through the video task's hook (the segment barrier
fails the video), anything else in the job.

The rows of the outcomes go to the results tables first (`ResultParts`: one part per call), so
an item the job state counts has its rows written; what a failed part write misses, the job's
compaction fills in.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from framefleet.core.documents import VideoDocument
from framefleet.core.storage import Storage
from framefleet.core.tables import Rows
from framefleet.dataset.parts import part_name, write_part
from framefleet.inference.pipeline import ItemResult
from framefleet.state.jobs import JobStore, Outcome
from framefleet.state.leases import LeaseStore

log = logging.getLogger(__name__)

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


class ResultParts:
    """Writes the rows of outcomes as parts of the results tables under the output root.

    Args:
        dst: the job's output root. job_id: the job. work: names the message in part names
            (``b0000042`` for image batch 42, ``v`` for a video's merge).
    """

    def __init__(self, dst: Storage, job_id: str, work: str) -> None:
        self.dst = dst
        self.job_id = job_id
        self.work = work

    def write(self, results: list[ItemResult]) -> None:
        """Write one part with the rows of ``results`` (items, or merged videos). Never raises:
        the outcomes must reach the job state whatever happens to their rows, and the job's
        compaction adds the rows of a part that was not written."""
        if not results:
            return
        try:
            rows = Rows(part_name(self.job_id, self.work, [r.item for r in results]), self.job_id)
            for result in results:
                result.add_rows(rows, self.dst.read_bytes)
            write_part(self.dst, rows)
        except Exception:
            log.exception(
                "results part of %d item(s) of job %s not written; the job's compaction adds "
                "them from their documents",
                len(results),
                self.job_id,
            )


class ImageRecorder:
    """Outcomes of one image message, recorded together."""

    def __init__(self, jobs: JobStore, job_id: str, lease_id: str, parts: ResultParts) -> None:
        self.jobs = jobs
        self.job_id = job_id
        self.lease_id = lease_id
        self.parts = parts
        self._pending: list[Outcome] = []
        self._results: list[ItemResult] = []
        self._flushed_at = time.monotonic()
        # The task's thread records; the pipeline's reader thread may flush (a suspect's outcome
        # before the next suspect starts alone).
        self._lock = threading.Lock()

    def record(self, result: ItemResult) -> tuple[bool, bool]:
        with self._lock:
            self._pending.append(outcome(result))
            self._results.append(result)
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
            self.parts.write(self._results)
            decided = self.jobs.record_many(self.job_id, self._pending, lease)
            self._pending, self._results = [], []
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
        parts: ResultParts,
    ) -> None:
        self.jobs = jobs
        self.leases = leases
        self.job_id = job_id
        self.lease_id = lease_id
        self.fail = fail
        self.parts = parts

    def record(self, result: ItemResult) -> tuple[bool, bool]:
        if not result.ok and self.fail is not None:
            return self.fail(result)
        if isinstance(result.document, VideoDocument):  # a merged video: its rows
            self.parts.write([result])
        decided = self.jobs.record_many(self.job_id, [outcome(result)])
        return True, decided.completed or decided.stopped

    def flush(self, release: bool) -> bool:
        if release:
            self.leases.release(self.lease_id)
        return False
