"""Waiting on a job and saying so when no live worker would take it.

Every command that waits on a job (`submit --wait`, `status --watch`, `finetune --fleet`'s
feature job) shows its progress with `watch` and, every `RECHECK_S` seconds, asks the live-worker
registry whether any worker consumes the job's queue: a job nobody will take says so, with the
command that starts a worker, instead of sitting at 0 %.
"""

from __future__ import annotations

import time

from rich.console import Console

from framefleet.core.jobrecord import JobRecord
from framefleet.queue import queue_name
from framefleet.state.jobs import JobStore
from framefleet.state.presence import LiveWorker, Presence
from producer.progress import watch

RECHECK_S = 5.0
"""Seconds between looks at the live-worker registry while waiting for a job."""

REPEAT_S = 60.0
"""Seconds between repeats of the no-live-worker warning while it still holds."""


def serves(live: list[LiveWorker], model: str) -> bool:
    """Whether one of the ``live`` workers consumes ``model``'s queue."""
    queue = queue_name(model)
    return any(queue in w.queues for w in live)


def no_worker_warning(jobs: JobStore, model: str, redis_url: str) -> str | None:
    """A warning naming the queue of ``model`` when no live worker consumes it, else None."""
    live = Presence(jobs.conn).live()
    if serves(live, model):
        return None
    queue = queue_name(model)
    others = ", ".join(f"{w.node} ({' '.join(w.queues)})" for w in live)
    return (
        f"warning: no live worker consumes queue {queue}; the job waits until one starts. "
        f"Start one where the model files are: framefleet worker --models {model} "
        f"(with FRAMEFLEET_REDIS_URL={redis_url}). "
        + (f"Live workers: {others}." if live else "No worker is live on this Redis.")
    )


def watch_with_worker_check(
    jobs: JobStore, job_id: str, redis_url: str, console: Console | None = None
) -> JobRecord:
    """`watch` the job until it finishes, printing `no_worker_warning` (yellow, on ``console``)
    while it holds, at most every `REPEAT_S` seconds."""
    console = console or Console(stderr=True)
    model = jobs.get(job_id).model
    next_check = 0.0
    last_warning = -REPEAT_S

    def wait(interval_s: float) -> None:
        nonlocal next_check, last_warning
        jobs.wait_for_change(job_id, interval_s)  # returns at once when the job finishes
        now = time.monotonic()
        if now < next_check:
            return
        next_check = now + RECHECK_S
        warning = no_worker_warning(jobs, model, redis_url)
        if warning and now - last_warning >= REPEAT_S:
            console.print(warning, highlight=False, markup=False, style="yellow")
            last_warning = now
        elif not warning:
            last_warning = -REPEAT_S  # warn again at once if the workers go away

    return watch(jobs, job_id, console=console, wait=wait)
