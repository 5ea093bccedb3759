"""What stands between a task and a lost item: its lease, crash counts and fallback outcomes.

`guarded` wraps a task body. It takes the message's lease in one call that also says which units
are done, which died with their process before and which were rewritten (`LeaseStore.begin`),
skipping messages of a job that is no longer running (cancelled, stopped early, finished); the
heartbeat renews the lease; and on the way out:

- the body finished: the outcomes of an image message are recorded together and the lease
  released in the same call (`Guard.flush`); a video unit's lease is released;
- the body sent a delayed retry (`Guard.retry`): the lease is handed to the retry message, so a
  node that dies before the retry starts loses nothing (a sweeper sends the retry);
- Redis stayed unreachable: the lease is kept, so a sweeper resends the message once Redis is back;
- any other exception (the soft time limit of a read that hangs, too): every unit without an
  outcome is recorded as failed with the exception as its reason, then the lease is released. No
  item is acknowledged without an outcome.

Images and video messages share this. A unit is an image, a whole video (plan, merge) or a
video segment (``clip.mp4#3``); a video unit's failure is recorded by the ``fail`` hook the video
task passes (a failed segment fails its video through the segment barrier).

`Guard.begin` passes a unit through the safeguards (`workers.safeguards.CHAIN`: skip done units,
fail poison units, run suspects alone, resume complete outputs); every outcome then takes one
road: the message's recorder (`workers.recorders`: an image message's outcomes in one call that
also releases the lease, a video unit's at once), then the observers, then the report if the job
ended.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Task
from celery.exceptions import Retry, SoftTimeLimitExceeded

from framefleet.core.errors import BrokerError, ItemsFailed
from framefleet.core.messages import ImageBatch, Message
from framefleet.inference.pipeline import ItemResult, worker_id
from framefleet.queue import queue_name, task_options
from framefleet.report import write_reports
from framefleet.state.jobs import JobStore
from framefleet.state.leases import Begun
from workers.recorders import (
    FailHook,
    ImageRecorder,
    OutcomeRecorder,
    ResultParts,
    VideoRecorder,
)
from workers.runtime import WorkerRuntime
from workers.safeguards import CHAIN, Safeguard

log = logging.getLogger(__name__)


def units(job: Message) -> tuple[str, ...]:
    """The units a message carries: its images, or its one video unit (``clip.mp4#3``)."""
    return job.items if isinstance(job, ImageBatch) else (job.unit.id,)


class Guard:
    """The lease and the outcomes of one running message.

    Args:
        rt: the worker process's runtime.
        lease_id: the message's lease (its Celery task id).
        job: the message.
        begun: what taking the lease found (`LeaseStore.begin`).
        fail: records a failed video unit (images are recorded in the job directly).
        chain: the safeguards a unit passes before it runs (`workers.safeguards.CHAIN`).
    """

    def __init__(
        self,
        rt: WorkerRuntime,
        lease_id: str,
        job: Message,
        begun: Begun,
        fail: FailHook | None = None,
        chain: tuple[Safeguard, ...] = CHAIN,
    ) -> None:
        self.rt = rt
        self.lease_id = lease_id
        self.job = job
        self.begun = begun
        self.chain = chain
        self.units = units(job)
        self.batch = isinstance(job, ImageBatch)
        work = f"b{job.batch_no:07d}" if isinstance(job, ImageBatch) else "v"
        parts = ResultParts(rt.storage(job.output_uri), job.job_id, work)
        self.recorder: OutcomeRecorder = (
            ImageRecorder(rt.jobs, job.job_id, lease_id, parts)
            if self.batch
            else VideoRecorder(rt.jobs, rt.leases, job.job_id, lease_id, fail, parts)
        )
        self.settled: set[str] = set()
        self.failed: list[ItemResult] = []
        self.handed_over = False
        self.released = False
        self.alone = ""
        """The unit running alone under the lease ("" while the units run together)."""
        self.counted: set[str] = (
            set(self.units) if len(self.units) == 1 and self.units[0] in begun.crashes else set()
        )
        """Units whose start alone is counted and not yet settled (`LeaseStore.mark`)."""

    @property
    def suspects(self) -> set[str]:
        """Units of a message whose process died: they run alone, first."""
        return set(self.begun.crashes)

    def begin(self, unit: str) -> bool:
        """Pass ``unit`` through the safeguards; False if it is not to run (settled, or given
        its outcome here: failed as poison, resumed)."""
        for safeguard in self.chain:
            verdict = safeguard.before(self, unit)
            if verdict is None:
                continue
            if verdict is False:
                self.settled.add(unit)
            elif isinstance(verdict, ItemResult):
                self.record(verdict)
            return False
        return True

    def resend(self, item: str) -> None:
        """``item`` failed transiently and goes out again in a retry message."""
        self.settle(item)

    def settle(self, unit: str) -> None:
        """``unit`` is done with here (its outcome recorded, or resent): a start of it counted
        alone did not die, so it is uncounted."""
        if unit in self.counted:
            self.counted.discard(unit)
            self.rt.leases.uncount(self.job.job_id, unit)
        self.settled.add(unit)

    def uncount_unsettled(self) -> None:
        """Uncount the starts of units that ended here without an outcome or a resend (a message
        that skipped them): they did not die."""
        for unit in sorted(self.counted):
            self.settle(unit)

    def retry(self, task: Task, again: Message, countdown_s: float) -> Retry:
        """Send ``again`` (the units to retry) after ``countdown_s``; the exception to raise.

        The lease goes to the retry message first (`LeaseStore.postpone`), so from now until
        the retry starts somewhere the message is guarded: if this node dies before the
        countdown ends, a sweeper sends it.
        """
        self.rt.leases.postpone(self.lease_id, again.encode(), countdown_s, units(again))
        self.handed_over = True
        return task.retry(args=[again.encode()], countdown=countdown_s, **task_options(again))

    def record(self, result: ItemResult) -> None:
        """Record the final outcome of ``result.item`` through the message's recorder, tell the
        observers, and write the report if that ended the job."""
        if not result.ok:
            log.warning("%s of job %s failed: %s", result.item, self.job.job_id, result.message)
            self.failed.append(result)
        counted, ended = self.recorder.record(result)
        if self.batch:  # the record itself clears the item's count
            self.counted.discard(result.item)
            self.settled.add(result.item)
        else:
            self.settle(result.item)
        if counted:
            self.rt.observers.on_item(self.job, result, "done" if result.ok else "failed")
        if ended:
            report(self.rt.jobs, self.job.job_id)

    def flush(self, release: bool) -> None:
        """Record what waits in the recorder; with ``release`` the message is finished and its
        lease released in the same call."""
        ended = self.recorder.flush(release)
        self.released = self.released or release
        if ended:
            report(self.rt.jobs, self.job.job_id)

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
    rt: WorkerRuntime, task: Task, job: Message, task_name: str, fail: FailHook | None = None
) -> Iterator[Guard | None]:
    """Run a task body under a lease; yields None when the message is to be skipped.

    ``fail`` records a failed video unit (images are recorded in the job directly).
    """
    lease_id = str(task.request.id or f"{job.job_id}:{job.kind}:{_number(job)}")
    queue = queue_name(job.model)
    body, limit = job.encode(), rt.settings.max_crashes
    begun = rt.leases.begin(
        lease_id, job.job_id, task_name, queue, body, worker_id(), units(job), limit
    )
    if begun.status is None:
        log.error("dropped %s of unknown job %s (deleted, or another Redis)", job.kind, job.job_id)
        yield None
        return
    if not begun.taken:
        log.info("skipped %s of job %s: the job is %s", job.kind, job.job_id, begun.status)
        yield None
        return
    rt.heartbeat.hold(lease_id)
    guard = Guard(rt, lease_id, job, begun, fail)
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
            guard.flush(release=True)
        except BrokerError as again:
            release = False
            log.error("could not record the failure (%s); the lease is kept for a sweeper", again)
    finally:
        rt.heartbeat.drop(lease_id)
        if release:
            try:
                guard.uncount_unsettled()
            except BrokerError as exc:  # a start left counted: one death too many, at worst
                log.error("could not uncount the starts of %s: %s", sorted(guard.counted), exc)
        if release and not guard.handed_over and not guard.released:
            try:
                rt.leases.release(lease_id)
            except BrokerError as exc:  # it expires; a sweeper resends it; redoing is harmless
                log.error("could not release lease %s: %s", lease_id, exc)


def report(jobs: JobStore, job_id: str) -> None:
    """Write the job's reports (the caller ended the job)."""
    try:
        page = write_reports(jobs, job_id)
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
