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

`Guard.begin` decides whether a unit runs: one that is done is skipped; one that killed its process
``max_crashes`` times while it ran alone is recorded as failed (a poison unit) instead; one that was
in a message whose process died runs alone (`LeaseStore.mark`), so that a death is charged to it
only; and an image
whose outputs are already complete is counted done without running (`workers.resume`; not with
``submit --force``, nor when the output root was empty at submit, nor when a following job saw
it rewritten).

Image outcomes wait in the guard and reach Redis in one call per message (`JobStore.record_many`),
or every `FLUSH_S` seconds in a long message, so progress stays live.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from celery import Task
from celery.exceptions import Retry, SoftTimeLimitExceeded

from framefleet.core.errors import BrokerError, ItemsFailed
from framefleet.core.messages import ImageBatch, Message
from framefleet.inference.pipeline import ItemResult, worker_id
from framefleet.queue import queue_name, task_options
from framefleet.report import write_reports
from framefleet.state.jobs import Outcome
from framefleet.state.leases import Begun
from workers import runtime
from workers.resume import existing_result
from workers.runtime import WorkerRuntime

log = logging.getLogger(__name__)


FLUSH_S = 1.0
"""Longest time an image outcome waits in the guard before it is recorded (live progress)."""

FailHook = Callable[[ItemResult], tuple[bool, bool]]
"""Records the failure of a video unit: (it failed its video now, that completed the job)."""


def units(job: Message) -> tuple[str, ...]:
    """The units a message carries: its images, or its one video unit (``clip.mp4#3``)."""
    return job.items if isinstance(job, ImageBatch) else (job.unit.id,)


class Guard:
    """The lease and the outcomes of one running message."""

    def __init__(
        self,
        rt: WorkerRuntime,
        lease_id: str,
        job: Message,
        begun: Begun,
        fail: FailHook | None = None,
    ) -> None:
        self.rt = rt
        self.lease_id = lease_id
        self.job = job
        self.begun = begun
        # fresh_output: the output root was empty at submit, so no earlier outputs to look for.
        self.resume = isinstance(job, ImageBatch) and not (
            begun.params.get("force") or begun.params.get("fresh_output")
        )
        self.settled: set[str] = set()
        self.failed: list[ItemResult] = []
        self.handed_over = False
        self.released = False
        self._fail = fail
        self._alone = ""
        self._pending: list[Outcome] = []
        self._flushed_at = time.monotonic()

    @property
    def suspects(self) -> set[str]:
        """Units of a message whose process died: they run alone, first."""
        return set(self.begun.crashes)

    def begin(self, item: str) -> bool:
        """Decide whether ``item`` runs; False if not (done, failed here as poison, resumed)."""
        if item in self.begun.done:
            self.settled.add(item)
            return False
        limit = self.rt.settings.max_crashes
        crashes = self.begun.crashes.get(item, 0)
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
        alone = item if item in self.begun.crashes and len(units(self.job)) > 1 else ""
        if alone != self._alone:  # a suspect runs alone; after the suspects, the rest together
            self.rt.leases.mark(self.lease_id, alone)
            self._alone = alone
        rewritten = item in self.begun.redo
        if self.resume and not rewritten and (done := self._existing(item)) is not None:
            self.record(done)
            return False
        return True

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
        self.settled.add(item)

    def settle(self, unit: str) -> None:
        """A video ``unit``'s outcome is recorded (by the caller) or resent."""
        if unit in self.begun.crashes:
            self.rt.leases.clear_crashes(self.job.job_id, [unit])
        self.settled.add(unit)

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
        """Record the final outcome of ``result.item``: an image's waits for `flush`; a video
        unit's is recorded now (and the report written if that ended the job)."""
        if not result.ok:
            log.warning("%s of job %s failed: %s", result.item, self.job.job_id, result.message)
            self.failed.append(result)
        self.settled.add(result.item)
        outcome = Outcome(result.item, result.ok, result.reason(), result.classes, result.frames)
        if isinstance(self.job, ImageBatch):
            self._pending.append(outcome)
            self.rt.observers.on_item(self.job, result, "done" if result.ok else "failed")
            if time.monotonic() - self._flushed_at >= FLUSH_S:
                self.flush(release=False)
            return
        counted, ended = True, False
        if not result.ok and self._fail is not None:
            counted, ended = self._fail(result)
            self.settle(result.item)
        else:
            decided = self.rt.jobs.record_many(self.job.job_id, [outcome])
            ended = decided.completed or decided.stopped
        if counted:
            self.rt.observers.on_item(self.job, result, "done" if result.ok else "failed")
        if ended:
            report(self.job.job_id)

    def flush(self, release: bool) -> None:
        """Record the image outcomes waiting here, in one call; with ``release`` the message is
        finished and its lease is released in the same call."""
        self._flushed_at = time.monotonic()
        if not self._pending and not release:
            return
        lease = self.lease_id if release else ""
        decided = self.rt.jobs.record_many(self.job.job_id, self._pending, lease)
        self._pending = []
        self.released = release
        if decided.completed or decided.stopped:
            report(self.job.job_id)

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
    begun = rt.leases.begin(
        lease_id, job.job_id, task_name, queue, job.encode(), worker_id(), units(job)
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
        if release and not guard.handed_over and not guard.released:
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
