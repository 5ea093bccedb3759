"""The video tasks: plan a video, process one segment, merge the segments.

A video's life: the producer sends one ``video_plan``; the plan task probes the container,
splits it and sends one ``video_segment`` per segment (any worker takes them); each segment
records its outcome in the video's segment state (`framefleet.core.videostate`), whose script
decides once that the last segment is in and the plan's stored ``video_merge`` is due, or that
a failed segment failed the video. The merge publishes the video and records it in the job.

For monitors, as the image task: the arguments are `Message.describe`, a task returns what it
did, and a video that finally failed raises `ItemsFailed` after it is recorded. The observers see
one message per task and one item outcome per video (its merge, or the failure that ended it).
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from celery import Celery, Task

from framefleet.core.errors import ItemsFailed
from framefleet.core.messages import VideoMerge, VideoPlan, VideoSegment
from framefleet.core.videostate import SegmentOutcome, VideoStore
from framefleet.inference.pipeline import ItemResult, failure
from framefleet.inference.video import tracking
from framefleet.inference.video.fetch import local_video
from framefleet.inference.video.merge import delete_parts, merge_video
from framefleet.inference.video.plan import merge_message, plan_segments
from framefleet.inference.video.probe import probe
from framefleet.inference.video.segment import process_segment
from framefleet.queue import (
    TASK_VIDEO_MERGE,
    TASK_VIDEO_PLAN,
    TASK_VIDEO_SEGMENT,
    send_job,
    task_options,
)
from workers import runtime
from workers.tasks import _cancelled, _decode, _report

log = logging.getLogger(__name__)

def register(app: Celery) -> None:
    """Register the three video tasks on ``app``."""
    tracking.preload()

    @app.task(name=TASK_VIDEO_PLAN, bind=True, max_retries=None, throws=(ItemsFailed,))
    def video_plan(self: Task, message: dict[str, Any]) -> dict[str, Any]:
        job, skipped = _start(VideoPlan, message)
        if job is None:
            return skipped
        rt = runtime.current()
        videos = VideoStore(rt.jobs)
        if videos.state(job.job_id, job.item) not in ("", "running"):
            return {"job": job.job_id, "outcome": "skipped: video past its segments"}
        with rt.observers.message(job):
            src = rt.storage(job.input_uri)
            try:
                with local_video(src, job.item) as path:
                    video = probe(path, src.uri_for(job.item))
            except Exception as exc:  # a bad video is one failed item
                return _video_failed(self, job, failure(job.item, exc))
            segments = plan_segments(job, video)
            # Recorded before sending, so a segment never finds its video unplanned. A
            # redelivered plan resends every segment; each is counted once, skipped once done.
            videos.plan(job.job_id, job.item, merge_message(job, video))
            for segment in segments:
                send_job(self.app, segment)
        log.info("video %s of job %s: %d frames, %d segments", job.item, job.job_id,
                 video.frames, len(segments))  # fmt: skip
        return {"segments": len(segments), "frames": video.frames, "job": job.job_id}

    @app.task(name=TASK_VIDEO_SEGMENT, bind=True, max_retries=None, throws=(ItemsFailed,))
    def video_segment(self: Task, message: dict[str, Any]) -> dict[str, Any]:
        job, skipped = _start(VideoSegment, message)
        if job is None:
            return skipped
        rt = runtime.current()
        videos = VideoStore(rt.jobs)
        if videos.state(job.job_id, job.item) != "running":
            return {"job": job.job_id, "outcome": "skipped: video merged or failed"}
        if job.segment_no in videos.done_segments(job.job_id, job.item):
            return {"job": job.job_id, "outcome": "skipped: segment done by an earlier run"}
        with rt.observers.message(job):
            try:
                model = rt.models.get(job.model, job.engine)
            except Exception as exc:
                result = failure(job.unit.id, exc)
            else:
                src, dst = rt.storage(job.input_uri), rt.storage(job.output_uri)
                threads = runtime.cv_threads(rt.settings)
                result = process_segment(job, src, dst, model, threads)
            if result.transient and job.attempt < rt.settings.max_retries:
                raise _retry(self, job, rt.settings.retry_backoff_s)
            reason = None
            if not result.ok:
                where = f"segment {job.segment_no} (frames {job.start_frame}-{job.end_frame})"
                text = f"{where}: {result.message}"
                reason = {**result.reason(), "item": job.item, "message": text}
            frames = (job.end_frame or job.start_frame) - job.start_frame
            outcome = videos.record(
                job.job_id, job.item, job.segment_no, result.ok, reason, frames=frames
            )
            if outcome is SegmentOutcome.MERGE:
                send_job(self.app, videos.merge_message(job.job_id, job.item))
            if outcome in (SegmentOutcome.FAILED, SegmentOutcome.FAILED_JOB_COMPLETE):
                rt.observers.on_item(job, result, "failed")
            if outcome is SegmentOutcome.FAILED_JOB_COMPLETE:
                _report(job.job_id)
        if not result.ok:
            raise ItemsFailed(f"{job.unit.id} failed ({result.error}): {result.message}")
        return {"frames": result.frames, "outcome": outcome.name.lower(), "job": job.job_id}

    @app.task(name=TASK_VIDEO_MERGE, bind=True, max_retries=None, throws=(ItemsFailed,))
    def video_merge(self: Task, message: dict[str, Any]) -> dict[str, Any]:
        job, skipped = _start(VideoMerge, message)
        if job is None:
            return skipped
        rt = runtime.current()
        if rt.jobs.is_done(job.job_id, job.item):
            return {"job": job.job_id, "outcome": "skipped: merged by an earlier run"}
        with rt.observers.message(job):
            dst = rt.storage(job.output_uri)
            try:
                model = rt.models.get(job.model, job.engine)
            except Exception as exc:
                result = failure(job.item, exc)
            else:
                source = rt.storage(job.input_uri).uri_for(job.item)
                result = merge_video(job, dst, source, model.info, model.adapter.labels)
            if result.transient and job.attempt < rt.settings.max_retries:
                raise _retry(self, job, rt.settings.retry_backoff_s)
            if not result.ok:
                return _video_failed(self, job, result)
            completed = rt.jobs.record(
                job.job_id, job.item, ok=True, classes=result.classes, frames=result.frames
            )
            VideoStore(rt.jobs).settle(job.job_id, job.item, merged=True)
            rt.observers.on_item(job, result, "done")
            try:
                delete_parts(job, dst)
            except Exception as exc:  # the video is published; only scratch files are left
                log.warning("parts of %s in job %s not deleted: %s", job.item, job.job_id, exc)
            if completed:
                _report(job.job_id)
        return {"frames": result.frames, "segments": job.segments, "job": job.job_id}


J = TypeVar("J", VideoPlan, VideoSegment, VideoMerge)


def _start(cls: type[J], message: Any) -> tuple[J | None, dict[str, Any]]:
    """The message as ``cls``, or None and why the task does nothing (malformed, cancelled)."""
    job = _decode(cls, message)
    if job is None:
        return None, {"outcome": "dropped: malformed message"}
    if _cancelled(job):
        return None, {"job": job.job_id, "outcome": "skipped: job cancelled or unknown"}
    return job, {}


def _video_failed(task: Task, job: VideoPlan | VideoMerge, result: ItemResult) -> dict[str, Any]:
    """Retry a transient failure, else record the video failed (and raise `ItemsFailed`)."""
    rt = runtime.current()
    if result.transient and job.attempt < rt.settings.max_retries:
        raise _retry(task, job, rt.settings.retry_backoff_s)
    log.warning("video %s of job %s failed: %s", job.item, job.job_id, result.message)
    completed = rt.jobs.record(job.job_id, job.item, ok=False, reason=result.reason())
    if isinstance(job, VideoMerge):
        VideoStore(rt.jobs).settle(job.job_id, job.item, merged=False, error=result.message)
    rt.observers.on_item(job, result, "failed")
    if completed:
        _report(job.job_id)
    raise ItemsFailed(f"{job.item} failed ({result.error}): {result.message}")


def _retry(task: Task, job: VideoPlan | VideoSegment | VideoMerge, backoff_s: float) -> Any:
    countdown = backoff_s * 2**job.attempt
    log.warning("retrying %s of job %s in %.0f s", job.kind, job.job_id, countdown)
    again = job.with_items(job.items, job.attempt + 1)
    return task.retry(args=[again.encode()], countdown=countdown, **task_options(again))
