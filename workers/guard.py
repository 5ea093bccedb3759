"""What stands between a task and a lost item: its lease, item start counts and fallback outcomes.

`guarded` wraps a task body. It takes the message's lease (skipping messages of a job that is no
longer running: cancelled, stopped early, finished), has the heartbeat renew it, and on the way out:

- the body finished: the lease is released;
- the body sent a delayed retry (`Guard.retry`): the lease is handed to the retry message, so a
  node that dies before the retry starts loses nothing (a sweeper sends the retry);
- Redis stayed unreachable: the lease is kept, so a sweeper resends the message once Redis is back;
- any other exception (the soft time limit of a read that hangs, too): every unit without an
  outcome is recorded as failed with the exception as its reason, then the lease is released. No
  item is acknowledged without an outcome.

Images and video messages share this. A unit is an image, a whole video (plan, merge) or a
video segment (``clip.mp4#3``); a video unit's failure is recorded by the ``fail`` hook the video
task passes (a failed segment fails its video through the segment barrier).

`Guard.begin` counts a start of an item: an item whose earlier starts killed their process
``max_crashes`` times is recorded as failed (a poison item) instead of run again, and an image
whose outputs are already complete is counted done without running (`workers.resume`; not with
``submit --force``, nor when the output root was empty at submit).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from celery import Task
from celery.exceptions import Retry, SoftTimeLimitExceeded

from framefleet.core.errors import BrokerError, ItemsFailed
from framefleet.core.followstate import FollowStore
from framefleet.core.messages import ImageBatch, Message
from framefleet.inference.pipeline import ItemResult, worker_id
from framefleet.queue import queue_name, task_options
from framefleet.report import write_reports
from workers import runtime
from workers.resume import existing_result

log = logging.getLogger(__name__)


FailHook = Callable[[ItemResult], tuple[bool, bool]]
"""Records the failure of a video unit: (it failed its video now, that completed the job)."""


def units(job: Message) -> tuple[str, ...]:
    """The units a message carries: its images, or its one video unit (``clip.mp4#3``)."""
    return job.items if isinstance(job, ImageBatch) else (job.unit.id,)


class Guard:
    """The lease and the outcomes of one running message."""

    def __init__(
        self,
        lease_id: str,
        job: Message,
        params: dict[str, Any] | None = None,
        fail: FailHook | None = None,
    ) -> None:
        self.lease_id = lease_id
        self.job = job
        params = params or {}
        # fresh_output: the output root was empty at submit, so no earlier outputs to look for.
        self.resume = isinstance(job, ImageBatch) and not (
            params.get("force") or params.get("fresh_output")
        )
        self.rt = runtime.current()
        self.settled: set[str] = set()
        self.failed: list[ItemResult] = []
        self.handed_over = False
        self._fail = fail

    def begin(self, item: str) -> bool:
        """Count a start of ``item``; False if it is not to run (done, or failed here as poison)."""
        limit = self.rt.settings.max_crashes
        starts = self.rt.leases.begin_item(self.job.job_id, item, self.lease_id, limit)
        if starts < 0:
            self.settled.add(item)
            return False
        crashes = starts - 1
        if crashes >= limit:
            self.record(
                ItemResult(
                    item=item,
                    ok=False,
                    error="WorkerCrashed",
                    message=(
                        f"{item}: its worker process died or hung past the time limit {crashes} "
                        f"times while processing it (killed, out of memory, or a crash in native "
                        f"code); not retried again (FRAMEFLEET_MAX_CRASHES={limit}). Check the "
                        "file, then `framefleet retry`"
                    ),
                )
            )
            return False
        if self.resume and (done := self._existing(item)) is not None and not self._rewritten(item):
            self.record(done)
            return False
        return True

    def _rewritten(self, item: str) -> bool:
        """True if a following job saw ``item`` rewritten: its outputs are of the old content."""
        return FollowStore(self.rt.jobs).is_redo(self.job.job_id, item)

    def _existing(self, item: str) -> ItemResult | None:
        """The item's complete outputs from an earlier run, if any (resume)."""
        try:
            label = self.rt.models.get(self.job.model, self.job.engine).adapter.label
        except Exception:  # the model does not load: let the item fail with that reason
            return None
        dst = self.rt.storage(self.job.output_uri)
        return existing_result(item, dst, self.job.model, label)

    def resend(self, item: str) -> None:
        """``item`` failed transiently and goes out again in a retry message."""
        self.settle(item)

    def settle(self, unit: str) -> None:
        """``unit``'s outcome is recorded (by the caller) or resent: uncount its start."""
        self.rt.leases.end_item(self.job.job_id, unit)
        self.settled.add(unit)

    def retry(self, task: Task, again: Message, countdown_s: float) -> Retry:
        """Send ``again`` (the units to retry) after ``countdown_s``; the exception to raise.

        The lease goes to the retry message first (`LeaseStore.postpone`), so from now until
        the retry starts somewhere the message is guarded: if this node dies before the
        countdown ends, a sweeper sends it.
        """
        self.rt.leases.postpone(self.lease_id, again.encode(), countdown_s)
        self.handed_over = True
        return task.retry(args=[again.encode()], countdown=countdown_s, **task_options(again))

    def record(self, result: ItemResult) -> None:
        """Record the final outcome of ``result.item``; write the report if it completed the job."""
        job_id = self.job.job_id
        counted = True
        if result.ok:
            completed = self.rt.jobs.record(
                job_id, result.item, ok=True, classes=result.classes, frames=result.frames
            )
        else:
            log.warning("%s of job %s failed: %s", result.item, job_id, result.message)
            if self._fail is not None:
                counted, completed = self._fail(result)
                self.rt.leases.end_item(job_id, result.item)  # jobs.record clears the others
            else:
                completed = self.rt.jobs.record(
                    job_id, result.item, ok=False, reason=result.reason()
                )
            completed = self.rt.control.check_budget(job_id) or completed
        self.settled.add(result.item)
        if not result.ok:
            self.failed.append(result)
        if counted:
            self.rt.observers.on_item(self.job, result, "done" if result.ok else "failed")
        if completed:
            report(job_id)

    def fail_unsettled(self, exc: BaseException) -> None:
        """Record every unit without an outcome as failed with ``exc`` as the reason."""
        if isinstance(exc, SoftTimeLimitExceeded):
            limit = self.rt.settings.task_time_limit_s
            why = (
                f"the task ran past its soft time limit (hard limit {limit} s; "
                "FRAMEFLEET_TASK_TIME_LIMIT): a read or decode that hangs, or a stalled storage "
                "endpoint. Check the file and the storage, then `framefleet retry`"
            )
        else:
            why = f"unexpected error in the task: {exc!s}"
        for unit in units(self.job):
            if unit not in self.settled:
                self.record(
                    ItemResult(
                        item=unit,
                        ok=False,
                        error=type(exc).__name__,
                        message=f"{unit}: {why}"[:2000],
                    )
                )


@contextmanager
def guarded(
    task: Task, job: Message, task_name: str, fail: FailHook | None = None
) -> Iterator[Guard | None]:
    """Run a task body under a lease; yields None when the message is to be skipped.

    ``fail`` records a failed video unit (images are recorded in the job directly).
    """
    rt = runtime.current()
    lease_id = str(task.request.id or f"{job.job_id}:{job.kind}:{_number(job)}")
    queue = queue_name(job.model)
    status, params = rt.leases.acquire(
        lease_id, job.job_id, task_name, queue, job.encode(), worker_id()
    )
    if status is None:
        log.error("dropped %s of unknown job %s (deleted, or another Redis)", job.kind, job.job_id)
        yield None
        return
    if status not in ("running", "listing"):
        log.info("skipped %s of job %s: the job is %s", job.kind, job.job_id, status)
        yield None
        return
    rt.heartbeat.hold(lease_id)
    guard = Guard(lease_id, job, params, fail)
    release = True
    try:
        yield guard
    except (Retry, ItemsFailed):  # outcomes recorded; Celery shows them
        raise
    except BrokerError as exc:
        release = False
        log.error(
            "%s of job %s stopped: %s; its lease is kept, so a sweeper sends it again once Redis "
            "is back",
            job.kind,
            job.job_id,
            exc,
        )
    except Exception as exc:
        log.exception("%s of job %s failed unexpectedly; recording its items", job.kind, job.job_id)
        try:
            guard.fail_unsettled(exc)
        except BrokerError as again:
            release = False
            log.error("could not record the failure (%s); the lease is kept for a sweeper", again)
    finally:
        rt.heartbeat.drop(lease_id)
        if release and not guard.handed_over:
            try:
                rt.leases.release(lease_id)
            except BrokerError as exc:  # it expires; a sweeper resends it; redoing is harmless
                log.error("could not release lease %s: %s", lease_id, exc)


def report(job_id: str) -> None:
    """Write the job's reports (the caller completed the job)."""
    try:
        page = write_reports(runtime.current().jobs, job_id)
        log.info("job %s complete; report: %s", job_id, page)
    except Exception as exc:  # the outputs are safe; only the report is late
        log.error(
            "job %s complete but its report was not written: %s; rewrite it with "
            "`framefleet report %s`",
            job_id,
            exc,
            job_id,
        )


def _number(job: Message) -> Any:
    return getattr(job, "batch_no", getattr(job, "segment_no", 0))
