"""Per-video segment state in Redis: how many segments, which are done, and the merge barrier.

Each video of a job has a hash (segments, frames, state, error, merge message), a set of the
segments recorded done (counted once), and a place in the job's ``videos`` index (for `status`);
see `framefleet.state.keys`.

``state`` is ``running`` until one of two things is decided, once, by the recording script:
the last segment was recorded (``merging``: the caller that learns it enqueues the merge; a
redelivered segment finds the state moved on and does nothing), or a segment failed (``failed``:
the video is recorded failed in the job in the same script, so a failed segment can neither be
lost between two calls nor be followed by a merge of the other segments). The merge ends the
video as ``merged`` or ``failed``. No Celery chord: the set count survives redelivery.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from enum import IntEnum
from typing import Any

from framefleet.core.errors import JobNotFound
from framefleet.core.jobrecord import VideoProgress
from framefleet.core.messages import VideoMerge
from framefleet.state.jobs import LAG_WINDOW, JobStore


class SegmentOutcome(IntEnum):
    """What recording one segment decided."""

    NOTHING = 0
    """Counted (or already settled): nothing more to do."""
    MERGE = 1
    """The last segment: the caller enqueues the merge."""
    FAILED = 2
    """The segment failed its video; the video is recorded failed in the job."""
    FAILED_JOB_COMPLETE = 3
    """As FAILED, and that ended the job (complete, or its failure budget spent): the caller
    writes the report."""


class VideoStore:
    """Segment counts and the merge barrier of the videos of jobs in a `JobStore`'s Redis.

    Example:
        >>> videos = VideoStore(jobs)
        >>> videos.plan(job_id, "a.mp4", merge)  # merge.segments == 2
        >>> videos.record(job_id, "a.mp4", 0, ok=True)
        <SegmentOutcome.NOTHING: 0>
        >>> videos.record(job_id, "a.mp4", 1, ok=True)
        <SegmentOutcome.MERGE: 1>
    """

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs
        self.conn = jobs.conn
        self.keys = jobs.keys

    def _keys(self, job_id: str, item: str) -> tuple[str, str, str]:
        keys = self.keys
        return (
            keys.video(job_id, item),
            keys.video_done(job_id, item),
            keys.job_part(job_id, "videos"),
        )

    def plan(self, job_id: str, item: str, merge: VideoMerge) -> None:
        """Record the video's split and the merge to send once every segment is done
        (idempotent: a redelivered plan keeps the state it finds)."""
        video, _, index = self._keys(job_id, item)
        fields: dict[str, Any] = {"segments": merge.segments, "frames": merge.frames}
        fields["merge"] = json.dumps(merge.encode())
        now = time.time()
        # Built anew on each attempt: a plan lost to a dropped connection would leave the video
        # unplanned, every segment would skip itself, and the job would never end.
        self.conn.pipeline(
            lambda pipe: (
                pipe.hset(video, mapping=fields)
                .hsetnx(video, "state", "running")
                .zadd(index, {item: now}, nx=True)
            )
        )

    def record(
        self,
        job_id: str,
        item: str,
        segment: int,
        ok: bool,
        reason: Mapping[str, Any] | None = None,
        frames: int = 0,
    ) -> SegmentOutcome:
        """Record the final outcome of one segment and say what it decided.

        ``frames`` (the segment's frames, counted once) feeds the video's progress.

        Raises:
            JobNotFound: the video was never planned in this job (or the job was deleted).
        """
        video, done, _ = self._keys(job_id, item)
        keys = [video, done, self.keys.job(job_id)]
        args = [segment, "1" if ok else "0", item, json.dumps(dict(reason or {}))]
        result = self.conn.script("video_record", keys, [*args, time.time(), frames, LAG_WINDOW])
        if result == -1:
            raise JobNotFound(f"video {item!r} was never planned in job {job_id!r}")
        return SegmentOutcome(int(result))

    def settle(self, job_id: str, item: str, merged: bool, error: str = "") -> None:
        """Mark the video ``merged`` or ``failed`` once the merge has run."""
        video = self._keys(job_id, item)[0]
        state = "merged" if merged else "failed"
        self.conn.call(self.conn.client.hset, video, mapping={"state": state, "error": error})

    def video(self, job_id: str, item: str) -> VideoProgress:
        """Where video ``item`` stands (its row of the job snapshot).

        Raises:
            JobNotFound: the video was never planned in this job.
        """
        for video in self.jobs.get(job_id).videos:
            if video.item == item:
                return video
        raise JobNotFound(f"video {item!r} was never planned in job {job_id!r}")

    def merge_message(self, job_id: str, item: str) -> VideoMerge:
        """The merge the plan stored for the video.

        Raises:
            JobNotFound: the video was never planned in this job.
        """
        raw = self.conn.call(self.conn.client.hget, self._keys(job_id, item)[0], "merge")
        if raw is None:
            raise JobNotFound(f"video {item!r} was never planned in job {job_id!r}")
        return VideoMerge.decode(json.loads(raw))

    def state(self, job_id: str, item: str) -> str:
        """``running``, ``merging``, ``merged``, ``failed``, or ``""`` if never planned."""
        raw = self.conn.call(self.conn.client.hget, self._keys(job_id, item)[0], "state")
        return str(raw or "")

    def done_segments(self, job_id: str, item: str) -> set[int]:
        """Numbers of the segments recorded done."""
        members = self.conn.call(self.conn.client.smembers, self._keys(job_id, item)[1])
        return {int(m) for m in members}
