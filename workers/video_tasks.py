"""The video tasks: plan a video, process one segment, merge the segments.

A video's life: the producer sends one ``video_plan``; the plan task probes the container,
splits it and sends one ``video_segment`` per segment (any worker takes them); each segment
records its outcome in the video's segment state (`framefleet.state.videos`), whose script
decides once that the last segment is in and the plan's stored ``video_merge`` is due, or that
a failed segment failed the video. The merge publishes the video and records it in the job.

Each task runs under a lease, as the image task does (`workers.guard`): a node that dies while it
plans, processes a segment or merges has that message sent again by a sweeper within seconds
(the segment barrier counts a redelivered segment once); a delayed retry keeps the lease; a unit
that kills its process ``max_crashes`` times is failed (a segment fails its video); an unexpected
error records the unit failed instead of acknowledging it silently.

For monitors, as the image task: the arguments are `Message.describe`, a task returns what it
did, and a video that finally failed raises `ItemsFailed` after it is recorded. The observers see
one message per task and one item outcome per video (its merge, or the failure that ended it).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task

from framefleet.core.errors import ItemsFailed
from framefleet.core.messages import Message, VideoMerge, VideoPlan, VideoSegment
from framefleet.inference.pipeline import ItemResult, failure
from framefleet.inference.video import tracking
from framefleet.inference.video.fetch import local_video
from framefleet.inference.video.merge import delete_parts, merge_video
from framefleet.inference.video.plan import merge_message, plan_segments
from framefleet.inference.video.probe import probe
from framefleet.inference.video.segment import process_segment
from framefleet.queue import TASK_VIDEO_MERGE, TASK_VIDEO_PLAN, TASK_VIDEO_SEGMENT, send_job
from framefleet.state.videos import SegmentOutcome, VideoStore
from workers import cores, runtime
from workers.guard import Guard, guarded
from workers.recorders import FailHook
from workers.runtime import WorkerRuntime
from workers.tasks import STOPPED, _decode

DROPPED = {"outcome": "dropped: malformed message"}

log = logging.getLogger(__name__)


def register(app: Celery) -> None:
    """Register the three video tasks on ``app``."""
    tracking.preload()

    @app.task(name=TASK_VIDEO_PLAN, bind=True, max_retries=None, throws=(ItemsFailed,))
    def video_plan(self: Task, message: dict[str, Any]) -> dict[str, Any]:
        job = _decode(VideoPlan, message)
        if job is None:
            return DROPPED
        rt = runtime.current()
        with guarded(rt, self, job, TASK_VIDEO_PLAN) as guard:
            if guard is None:
                return _skipped(job)
            videos = VideoStore(rt.jobs)
            if videos.state(job.job_id, job.item) not in ("", "running"):
                return {"job": job.job_id, "outcome": "skipped: video past its segments"}
            if not guard.begin(job.item):
                return {"job": job.job_id, "outcome": "skipped: video done or failed"}
            with rt.observers.message(job):
                src = rt.storage(job.input_uri)
                try:
                    with local_video(src, job.item) as path:
                        video = probe(path, src.uri_for(job.item))
                except Exception as exc:  # a bad video is one failed item
                    return _video_failed(self, guard, job, failure(job.item, exc))
                segments = plan_segments(job, video)
                # Recorded before sending, so a segment never finds its video unplanned. A
                # redelivered plan resends every segment; each is counted once, skipped once done.
                videos.plan(job.job_id, job.item, merge_message(job, video))
                for segment in segments:
                    send_job(self.app, segment)
                guard.settle(job.item)
            log.info("video %s of job %s: %d frames, %d segments", job.item, job.job_id,
                     video.frames, len(segments))  # fmt: skip
            return {"segments": len(segments), "frames": video.frames, "job": job.job_id}
        return {"job": job.job_id, "outcome": STOPPED}

    @app.task(name=TASK_VIDEO_SEGMENT, bind=True, max_retries=None, throws=(ItemsFailed,))
    def video_segment(self: Task, message: dict[str, Any]) -> dict[str, Any]:
        job = _decode(VideoSegment, message)
        if job is None:
            return DROPPED
        rt = runtime.current()
        with guarded(rt, self, job, TASK_VIDEO_SEGMENT, fail=_segment_failed(rt, job)) as guard:
            if guard is None:
                return _skipped(job)
            videos = VideoStore(rt.jobs)
            state = videos.state(job.job_id, job.item)
            if state == "merging":
                # The segment that completed the video may have died before it sent the merge:
                # send it again (a merge of a merged video does nothing).
                send_job(self.app, videos.merge_message(job.job_id, job.item))
                return {"job": job.job_id, "outcome": "skipped: video merging (merge sent)"}
            if state != "running":
                return {"job": job.job_id, "outcome": "skipped: video merged or failed"}
            if job.segment_no in videos.done_segments(job.job_id, job.item):
                return {"job": job.job_id, "outcome": "skipped: segment done by an earlier run"}
            unit = job.unit.id
            if not guard.begin(unit):  # its earlier starts killed their processes: failed
                raise ItemsFailed(f"{unit} failed: {guard.failed[0].message}")
            with rt.observers.message(job):
                try:
                    model = rt.models.get(job.model, job.engine)
                except Exception as exc:
                    result = failure(unit, exc)
                else:
                    src, dst = rt.storage(job.input_uri), rt.storage(job.output_uri)
                    threads = cores.cv_threads(rt.settings)
                    result = process_segment(job, src, dst, model, threads)
                if result.transient and job.attempt < rt.settings.max_retries:
                    guard.settle(unit)
                    raise _retry(self, guard, job, rt.settings.retry_backoff_s)
                if not result.ok:
                    guard.record(result)  # through _segment_failed: fails the video
                    raise ItemsFailed(f"{unit} failed ({result.error}): {result.message}")
                frames = (job.end_frame or job.start_frame) - job.start_frame
                outcome = videos.record(job.job_id, job.item, job.segment_no, True, frames=frames)
                if outcome is SegmentOutcome.MERGE:
                    send_job(self.app, videos.merge_message(job.job_id, job.item))
                elif videos.state(job.job_id, job.item) == "failed":
                    # Another segment failed the video while this one ran: no merge will take
                    # this part, and the job's end may have swept the parts already.
                    delete_parts(job.job_id, job.item, [job.segment_no], rt.storage(job.output_uri))
                guard.settle(unit)
            return {"frames": result.frames, "outcome": outcome.name.lower(), "job": job.job_id}
        return {"job": job.job_id, "outcome": STOPPED}

    @app.task(name=TASK_VIDEO_MERGE, bind=True, max_retries=None, throws=(ItemsFailed,))
    def video_merge(self: Task, message: dict[str, Any]) -> dict[str, Any]:
        job = _decode(VideoMerge, message)
        if job is None:
            return DROPPED
        rt = runtime.current()
        with guarded(rt, self, job, TASK_VIDEO_MERGE, fail=_merge_failed(rt, job)) as guard:
            if guard is None:
                return _skipped(job)
            if not guard.begin(job.item):
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
                if not result.ok:
                    return _video_failed(self, guard, job, result)
                VideoStore(rt.jobs).settle(job.job_id, job.item, merged=True)
                guard.record(result)  # counts the video done; writes the report if it was last
                try:
                    delete_parts(job.job_id, job.item, range(job.segments), dst)
                except Exception as exc:  # the video is published; only scratch files are left
                    log.warning("parts of %s in job %s not deleted: %s", job.item, job.job_id, exc)
            return {"frames": result.frames, "segments": job.segments, "job": job.job_id}
        return {"job": job.job_id, "outcome": STOPPED}


def _skipped(job: Message) -> dict[str, Any]:
    return {"job": job.job_id, "outcome": "skipped: job not running or unknown"}


def _segment_failed(rt: WorkerRuntime, job: VideoSegment) -> FailHook:
    """Records a failed segment in its video's barrier, which fails the video (once)."""

    def fail(result: ItemResult) -> tuple[bool, bool]:
        where = f"segment {job.segment_no} (frames {job.start_frame}-{job.end_frame})"
        reason = {**result.reason(), "item": job.item, "message": f"{where}: {result.message}"}
        videos = VideoStore(rt.jobs)
        outcome = videos.record(job.job_id, job.item, job.segment_no, False, reason)
        failed = outcome in (SegmentOutcome.FAILED, SegmentOutcome.FAILED_JOB_COMPLETE)
        return failed, outcome is SegmentOutcome.FAILED_JOB_COMPLETE

    return fail


def _merge_failed(rt: WorkerRuntime, job: VideoMerge) -> FailHook:
    """Records the video failed in the job, and its segment state as failed."""

    def fail(result: ItemResult) -> tuple[bool, bool]:
        completed = rt.jobs.record(job.job_id, job.item, ok=False, reason=result.reason())
        VideoStore(rt.jobs).settle(job.job_id, job.item, merged=False, error=result.message)
        return True, completed

    return fail


def _video_failed(
    task: Task, guard: Guard, job: VideoPlan | VideoMerge, result: ItemResult
) -> dict[str, Any]:
    """Retry a transient failure, else record the video failed (and raise `ItemsFailed`)."""
    rt = guard.rt
    if result.transient and job.attempt < rt.settings.max_retries:
        guard.settle(job.item)
        raise _retry(task, guard, job, rt.settings.retry_backoff_s)
    guard.record(result)
    raise ItemsFailed(f"{job.item} failed ({result.error}): {result.message}")


def _retry(
    task: Task, guard: Guard, job: VideoPlan | VideoSegment | VideoMerge, backoff_s: float
) -> Any:
    countdown = backoff_s * 2**job.attempt
    log.warning("retrying %s of job %s in %.0f s", job.kind, job.job_id, countdown)
    return guard.retry(task, job.with_items(job.items, job.attempt + 1), countdown)
