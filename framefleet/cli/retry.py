"""`framefleet retry`: run the failed items of a job again."""

from __future__ import annotations

import sys

import click

from framefleet.cli.base import EXIT_ITEMS_FAILED, EXIT_OK, HELP_EPILOG, _exits, main
from framefleet.core.settings import Settings


@main.command(epilog=HELP_EPILOG)
@click.argument("job_id")
@click.option("--wait", is_flag=True, help="Show live progress and wait for the job to finish.")
@click.pass_obj
@_exits
def retry(settings: Settings, job_id: str, wait: bool) -> None:
    """Run the failed items of JOB_ID again; items that succeeded are not redone.

    Poison items (failed as WorkerCrashed) get a fresh count of crashes. A job that was cancelled
    or stopped early has items with no outcome at all: submit it again instead (items whose
    outputs are complete are skipped).
    """
    from framefleet.queue import create_app
    from framefleet.state.jobs import JobStore
    from producer.progress import summary_table, watch
    from producer.retry import retry_failed

    jobs = JobStore.from_url(settings.redis_url, reconnect_s=settings.redis_wait_s)
    items = retry_failed(settings, create_app(settings), jobs, job_id)
    if not items:
        click.echo(f"job {job_id} has no failed items; nothing to retry", err=True)
        return
    click.echo(f"retrying {len(items)} failed items of job {job_id}", err=True)
    if wait:
        record = watch(jobs, job_id)
        click.echo(summary_table(record, list(jobs.failures(job_id))))
        sys.exit(EXIT_ITEMS_FAILED if record.failed else EXIT_OK)
