"""Celery tasks: thin wrappers that decode a message, run the pipeline and record outcomes.

A task does four things: decode the job, take its lease (`workers.guard`; skipped if the job is
no longer running: cancelled, stopped early, finished), run the plain pipeline function, and map
each item's outcome to "record" or "retry". Items that failed transiently are resent as a smaller
message of their own; the items that succeeded are not redone.

What monitors see (Flower reads the workers' events; no result backend): the task's arguments
are `Message.describe` (ids and counts, no URIs); a task returns its item counts, and a task
with finally failed items raises `ItemsFailed` after recording them, so it shows as FAILURE with
the counts and the first reasons. It is declared in ``throws``: Celery logs it as an expected
outcome, without a traceback, and nothing retries it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any, TypeVar

from celery import Celery, Task

from framefleet.core.errors import ItemsFailed, JobDecodeError
from framefleet.core.messages import ImageBatch, Message, VideoMerge, VideoPlan, VideoSegment
from framefleet.inference.pipeline import ItemResult, run_image_batch
from framefleet.queue import TASK_IMAGE_BATCH
from workers import runtime
from workers.guard import Guard, guarded

log = logging.getLogger(__name__)

STOPPED = "stopped: see the worker log (items failed with the error, or lease kept for a sweeper)"


def register(app: Celery) -> None:
    """Register the image task on ``app`` (`workers.video_tasks` registers the video ones)."""

    @app.task(name=TASK_IMAGE_BATCH, bind=True, max_retries=None, throws=(ItemsFailed,))
    def image_batch(self: Task, message: dict[str, Any]) -> dict[str, Any]:
        job = _decode(ImageBatch, message)
        if job is None:
            return {"outcome": "dropped: malformed message"}
        rt = runtime.current()
        with guarded(rt, self, job, TASK_IMAGE_BATCH) as guard:
            if guard is None:
                return {"job": job.job_id, "outcome": "skipped: job not running or unknown"}
            src, dst = rt.storage(job.input_uri), rt.storage(job.output_uri)

            def run(items: tuple[str, ...]) -> Iterator[ItemResult]:
                return run_image_batch(
                    job.with_items(items, job.attempt),
                    src,
                    dst,
                    model=lambda: rt.models.get(job.model, job.engine),
                    skip=lambda item: not guard.begin(item),
                    max_pixels=rt.settings.max_pixels,
                    io=rt.io,
                )

            # The pipeline reads ahead, so a process that dies leaves several items started.
            # Those run again one at a time, first: a poison item's starts are then its own.
            suspects = guard.suspects
            rest = tuple(item for item in job.items if item not in suspects)
            singles = (result for item in sorted(suspects) for result in run((item,)))
            with rt.observers.message(job):  # the batch runs lazily, as _settle iterates it
                return _settle(self, job, chain(singles, run(rest)), guard)
        return {"job": job.job_id, "outcome": STOPPED}


J = TypeVar("J", ImageBatch, VideoPlan, VideoSegment, VideoMerge)


def _decode(cls: type[J], message: Any) -> J | None:
    try:
        return cls.decode(message)
    except JobDecodeError as exc:
        # Nothing to record it against; retrying cannot fix a malformed message.
        log.error("dropped malformed %s message %r: %s", cls.kind, message, exc)
        return None


def _settle(
    task: Task, job: Message, results: Iterable[ItemResult], guard: Guard
) -> dict[str, Any]:
    """Record final outcomes (through ``guard``, which also feeds the observers, in one call per
    message); resend transient failures while attempts remain.

    Returns the item counts (the task's result, shown by Flower).

    Raises:
        Retry: some items failed transiently and are resent (after recording the others).
        ItemsFailed: some items finally failed (after recording every outcome).
    """
    rt = guard.rt
    retry: list[str] = []
    done = 0
    last_attempt = job.attempt >= rt.settings.max_retries
    for result in results:
        if result.transient and not last_attempt:
            guard.resend(result.item)
            retry.append(result.item)
            rt.observers.on_item(job, result, "retry")
            continue
        guard.record(result)  # waits in the guard; recorded with the others, in one call
        done += result.ok
    # The message ends (acknowledged, lease released) only once every outcome is in Redis; a
    # retry keeps the lease for the retry message.
    guard.flush(release=not retry)
    failed = guard.failed  # includes poison items failed without running
    counts = {  # counts first: Flower's result column shows the start of this
        "done": done,
        "failed": len(failed),
        "retrying": len(retry),
        "skipped": len(job.items) - done - len(failed) - len(retry),  # done by an earlier run
        "items": len(job.items),
        "job": job.job_id,
    }
    if retry:
        countdown = rt.settings.retry_backoff_s * 2**job.attempt
        log.warning("retrying %d item(s) of job %s in %.0f s", len(retry), job.job_id, countdown)
        raise guard.retry(task, job.with_items(tuple(retry), job.attempt + 1), countdown)
    if failed:
        shown = "; ".join(f"{r.item}: {r.error}" for r in failed[:3])
        more = f"; {len(failed) - 3} more" if len(failed) > 3 else ""
        raise ItemsFailed(
            f"{len(failed)} of {len(job.items)} items failed ({shown}{more}); {counts}; "
            f"reasons: framefleet status {job.job_id}"
        )
    return counts
