"""Per-video segment state in Redis: how many segments, which are done, and the merge barrier.

For each video of a job::

    {prefix}:job:{id}:video:{item}        hash   segments, frames, state, error, merge message
    {prefix}:job:{id}:video:{item}:done   set    segment numbers recorded done (counted once)
    {prefix}:job:{id}:videos              zset   video items, by plan time (for `status`)

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
from framefleet.core.jobstate import _COMPLETE, JobStore, video_keys
from framefleet.core.messages import VideoMerge


class SegmentOutcome(IntEnum):
    """What recording one segment decided."""

    NOTHING = 0
    """Counted (or already settled): nothing more to do."""
    MERGE = 1
    """The last segment: the caller enqueues the merge."""
    FAILED = 2
    """The segment failed its video; the video is recorded failed in the job."""
    FAILED_JOB_COMPLETE = 3
    """As FAILED, and that completed the job: the caller writes the report."""


_RECORD_SEGMENT = (
    _COMPLETE
    + """
-- KEYS: video done job jobdone jobfailed jobfinished   ARGV: segment ok item reason now frames
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
if ARGV[2] == '1' then
  if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
    redis.call('HINCRBY', KEYS[1], 'frames_done', ARGV[6])
  end
  if redis.call('SCARD', KEYS[2]) >= tonumber(redis.call('HGET', KEYS[1], 'segments')) then
    redis.call('HSET', KEYS[1], 'state', 'merging')
    return 1
  end
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'failed', 'error', cjson.decode(ARGV[4])['message'] or '')
if redis.call('SISMEMBER', KEYS[4], ARGV[3]) == 0 then
  redis.call('HSET', KEYS[5], ARGV[3], ARGV[4])
end
redis.call('HSETNX', KEYS[3], 'started_at', ARGV[5])
return 2 + complete(KEYS[3], KEYS[4], KEYS[5], ARGV[5], KEYS[6])
"""
)


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
        self._record = jobs.client.register_script(_RECORD_SEGMENT)

    def _keys(self, job_id: str, item: str) -> tuple[str, str, str]:
        return video_keys(self.jobs.prefix, job_id, item)

    def plan(self, job_id: str, item: str, merge: VideoMerge) -> None:
        """Record the video's split and the merge to send once every segment is done
        (idempotent: a redelivered plan keeps the state it finds)."""
        video, _, index = self._keys(job_id, item)
        pipe = self.jobs.client.pipeline(transaction=True)
        pipe.hset(
            video,
            mapping={
                "segments": merge.segments,
                "frames": merge.frames,
                "merge": json.dumps(merge.encode()),
            },
        )
        pipe.hsetnx(video, "state", "running")
        pipe.zadd(index, {item: time.time()}, nx=True)
        self.jobs._call(pipe.execute)

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
        job, job_done, job_failed, _ = self.jobs.keys(job_id)
        result = self.jobs._call(
            self._record,
            keys=[video, done, job, job_done, job_failed, self.jobs._finished_key(job_id)],
            args=[
                segment,
                "1" if ok else "0",
                item,
                json.dumps(dict(reason or {})),
                time.time(),
                frames,
            ],
        )
        if result == -1:
            raise JobNotFound(f"video {item!r} was never planned in job {job_id!r}")
        return SegmentOutcome(int(result))

    def settle(self, job_id: str, item: str, merged: bool, error: str = "") -> None:
        """Mark the video ``merged`` or ``failed`` once the merge has run."""
        video = self._keys(job_id, item)[0]
        state = "merged" if merged else "failed"
        self.jobs._call(self.jobs.client.hset, video, mapping={"state": state, "error": error})

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
        raw = self.jobs._call(self.jobs.client.hget, self._keys(job_id, item)[0], "merge")
        if raw is None:
            raise JobNotFound(f"video {item!r} was never planned in job {job_id!r}")
        return VideoMerge.decode(json.loads(raw))

    def state(self, job_id: str, item: str) -> str:
        """``running``, ``merging``, ``merged``, ``failed``, or ``""`` if never planned."""
        raw = self.jobs._call(self.jobs.client.hget, self._keys(job_id, item)[0], "state")
        return str(raw or "")

    def done_segments(self, job_id: str, item: str) -> set[int]:
        """Numbers of the segments recorded done."""
        members = self.jobs._call(self.jobs.client.smembers, self._keys(job_id, item)[1])
        return {int(m) for m in members}
