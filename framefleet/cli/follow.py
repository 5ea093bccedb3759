"""Following a job from the command line (`submit --wait`, `status --watch`): a job no live worker
will take is said so (at submit, in status, and while waiting), and Ctrl-C detaches from the job,
which goes on, with how to come back or stop it."""

from __future__ import annotations

import sys

import click

from framefleet.cli.base import EXIT_INTERRUPTED
from framefleet.core.jobrecord import JobRecord
from framefleet.core.settings import Settings
from framefleet.state.jobs import JobStore
from producer.waiting import no_worker_warning, watch_with_worker_check


def warn_if_no_worker(settings: Settings, jobs: JobStore, record: JobRecord) -> None:
    """Print `no_worker_warning` on stderr for a job that has not finished."""
    warning = None if record.finished else no_worker_warning(jobs, record.model, settings.redis_url)
    if warning:
        click.echo(warning, err=True)


def follow(settings: Settings, jobs: JobStore, job_id: str) -> JobRecord:
    """Show live progress until ``job_id`` finishes, warning while no live worker would take
    it; on Ctrl-C, detach (the job goes on) and exit 130."""
    try:
        return watch_with_worker_check(jobs, job_id, settings.redis_url)
    except KeyboardInterrupt:
        click.echo(
            f"\ndetached from job {job_id}; it goes on without this command.\n"
            f"  watch it again:  framefleet status {job_id} --watch\n"
            f"  stop it:         framefleet cancel {job_id}",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
