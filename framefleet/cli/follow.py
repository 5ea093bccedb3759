"""Following a job from the command line (`submit --wait`, `status --watch`): Ctrl-C detaches
from the job, which goes on, and says how to come back or stop it."""

from __future__ import annotations

import sys

import click

from framefleet.cli.base import EXIT_INTERRUPTED
from framefleet.core.jobstate import JobRecord, JobStore


def follow(jobs: JobStore, job_id: str) -> JobRecord:
    """Show live progress until ``job_id`` finishes; on Ctrl-C, detach and exit 130."""
    from producer.progress import watch

    try:
        return watch(jobs, job_id)
    except KeyboardInterrupt:
        click.echo(
            f"\ndetached from job {job_id}; it goes on without this command.\n"
            f"  watch it again:  framefleet status {job_id} --watch\n"
            f"  stop it:         framefleet cancel {job_id}",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
