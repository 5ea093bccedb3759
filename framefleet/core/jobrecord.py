"""The record of a job, as plain data: its status, its counts, its videos' progress.

`framefleet.state.jobs.JobStore` reads these from Redis; everything that shows a job (status,
jobs, the report, the summary) takes a `JobRecord` and needs no Redis.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    """Life of a job: listing -> running -> done, or stopped early: failed (the job as a whole
    could not go on) or cancelled (by a person). Done, failed and cancelled are final."""

    LISTING = "listing"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class VideoProgress:
    """Where one video of a job stands, for progress displays.

    Attributes:
        item: the video's input key.
        segments_done: segments with a final outcome; segments_total: segments planned.
        frames_done: frames processed so far; frames_total: frames the video holds (None while
            unknown).
    """

    item: str
    segments_done: int
    segments_total: int
    frames_done: int = 0
    frames_total: int | None = None
    state: str = ""
    """running, merging, merged or failed (`framefleet.state.videos`)."""
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, as `framefleet status --json` prints it."""
        return {
            "item": self.item,
            "segments_done": self.segments_done,
            "segments_total": self.segments_total,
            "frames_done": self.frames_done,
            "frames_total": self.frames_total,
            "state": self.state,
            "error": self.error,
        }

    @property
    def finished(self) -> bool:
        """True once every segment has an outcome."""
        return self.segments_total > 0 and self.segments_done >= self.segments_total


@dataclass(frozen=True)
class JobRecord:
    """A snapshot of one job."""

    job_id: str
    input_uri: str
    output_uri: str
    model: str
    status: JobStatus
    total: int
    done: int
    failed: int
    listed: bool
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    error: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    classes: dict[str, int] = field(default_factory=dict)
    frames: int = 0
    videos: tuple[VideoProgress, ...] = ()
    """Per-video segment progress, for jobs whose videos are split into segments (else empty)."""
    items_expire_at: float | None = None
    """When the per-item state (done items, failures) leaves Redis; None while the job runs or
    when it is kept forever (FRAMEFLEET_JOB_TTL_DAYS=0). Counts and classes stay."""

    @property
    def cancelled(self) -> int:
        """Items that never got an outcome because the job was stopped (cancelled, or failed as a
        whole); 0 while the job runs. done + failed + cancelled == total once it is stopped."""
        stopped = self.status in (JobStatus.CANCELLED, JobStatus.FAILED)
        return max(0, self.total - self.processed) if stopped else 0

    @property
    def processed(self) -> int:
        """Items with a final outcome, success or failure."""
        return self.done + self.failed

    @property
    def finished(self) -> bool:
        """True once the job will change no more."""
        return self.status in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)

    def items_expired(self, now: float | None = None) -> bool:
        """True once the job's per-item state has expired from Redis (see `items_expire_at`)."""
        now = time.time() if now is None else now
        return self.items_expire_at is not None and now >= self.items_expire_at

    def elapsed_s(self, now: float | None = None) -> float:
        """Seconds from submission to the end (or to ``now`` while running)."""
        end = self.finished_at or (time.time() if now is None else now)
        return max(0.0, end - self.created_at)

    def rate(self, now: float | None = None) -> float:
        """Items per second since the work started (0.0 before the first outcome)."""
        if self.started_at is None or self.processed == 0:
            return 0.0
        return self.processed / self._working_s(now)

    def frame_rate(self, now: float | None = None) -> float:
        """Images per second (video frames count one each) since the work started."""
        if self.started_at is None or self.frames == 0:
            return 0.0
        return self.frames / self._working_s(now)

    def _working_s(self, now: float | None) -> float:
        # From the first lease a worker took (`started_at`) to the end, and at least a second:
        # a rate over a few milliseconds (bad files fail at once) says nothing.
        end = self.finished_at or (time.time() if now is None else now)
        return max(end - (self.started_at or end), 1.0)

    def eta_s(self, now: float | None = None) -> float | None:
        """Seconds left at the current rate; None while unknown (listing, or no outcome yet)."""
        rate = self.rate(now)
        if not self.listed or rate <= 0:
            return None
        return max(0, self.total - self.processed) / rate

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, as written to the job summary."""
        return {
            "job_id": self.job_id,
            "input": self.input_uri,
            "output": self.output_uri,
            "model": self.model,
            "status": self.status.value,
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "listed": self.listed,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "items_expire_at": self.items_expire_at,
            "elapsed_s": round(self.elapsed_s(), 3),
            "items_per_s": round(self.rate(), 3),
            "frames": self.frames,
            "images_per_s": round(self.frame_rate(), 3),
            "error": self.error,
            "params": self.params,
            "classes": self.classes,
            "videos": [v.to_json() for v in self.videos],
        }
