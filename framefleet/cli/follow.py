"""Following a job from the command line (`submit --wait`, `status --watch`): a job no live worker
will take is said so (at submit, in status, and while waiting), and Ctrl-C detaches from the job,
which goes on, with how to come back or stop it."""

from __future__ import annotations

import sys
import time

import click
from rich.console import Console

from framefleet.cli.base import EXIT_INTERRUPTED
from framefleet.core.jobrecord import JobRecord
from framefleet.core.settings import Settings
from framefleet.state.jobs import JobStore
from framefleet.state.presence import Presence

RECHECK_S = 5.0
"""Seconds between looks at the live-worker registry while waiting for a job."""

REPEAT_S = 60.0
"""Seconds between repeats of the no-live-worker warning while it still holds."""


def no_worker_warning(settings: Settings, jobs: JobStore, model: str) -> str | None:
    """A warning naming the queue of ``model`` when no live worker consumes it, else None."""
    from framefleet.queue import queue_name

    queue = queue_name(model)
    live = Presence(jobs.conn).live()
    if any(queue in w.queues for w in live):
        return None
    others = ", ".join(f"{w.node} ({' '.join(w.queues)})" for w in live)
    return (
        f"warning: no live worker consumes queue {queue}; the job waits until one starts. "
        f"Start one where the model files are: framefleet worker --models {model} "
        f"(with FRAMEFLEET_REDIS_URL={settings.redis_url}). "
        + (f"Live workers: {others}." if live else "No worker is live on this Redis.")
    )


def warn_if_no_worker(settings: Settings, jobs: JobStore, record: JobRecord) -> None:
    """Print `no_worker_warning` on stderr for a job that has not finished."""
    if not record.finished and (warning := no_worker_warning(settings, jobs, record.model)):
        click.echo(warning, err=True)


def follow(settings: Settings, jobs: JobStore, job_id: str) -> JobRecord:
    """Show live progress until ``job_id`` finishes, warning while no live worker would take
    it; on Ctrl-C, detach (the job goes on) and exit 130."""
    from producer.progress import watch

    console = Console(stderr=True)
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
        warning = no_worker_warning(settings, jobs, model)
        if warning and now - last_warning >= REPEAT_S:
            console.print(warning, highlight=False, markup=False, style="yellow")
            last_warning = now
        elif not warning:
            last_warning = -REPEAT_S  # warn again at once if the workers go away

    try:
        return watch(jobs, job_id, console=console, wait=wait)
    except KeyboardInterrupt:
        click.echo(
            f"\ndetached from job {job_id}; it goes on without this command.\n"
            f"  watch it again:  framefleet status {job_id} --watch\n"
            f"  stop it:         framefleet cancel {job_id}",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
