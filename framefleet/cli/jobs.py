"""`framefleet status`, `jobs` and `cancel`: follow and steer jobs."""

from __future__ import annotations

import json

import click

from framefleet.cli.base import HELP_EPILOG, _exits, main
from framefleet.core.settings import Settings


@main.command(epilog=HELP_EPILOG)
@click.argument("job_id")
@click.option("--watch", "live", is_flag=True, help="Live progress bar until the job finishes.")
@click.option("--json", "as_json", is_flag=True, help="Print the job record as JSON.")
@click.option(
    "--write-report",
    is_flag=True,
    help="(Re)write _framefleet/summary.json, failures.jsonl and report.html.",
)
@click.pass_obj
@_exits
def status(settings: Settings, job_id: str, live: bool, as_json: bool, write_report: bool) -> None:
    """Counts, throughput, ETA and failures of JOB_ID."""
    from framefleet.core.jobstate import JobStore
    from framefleet.report import write_reports
    from producer.progress import summary_table, watch

    # --watch rides out a Redis restart (one line per retry) up to --redis-wait; a one-off
    # status fails at once.
    jobs = JobStore.from_url(settings.redis_url, reconnect_s=settings.redis_wait_s if live else 0)
    record = watch(jobs, job_id) if live else jobs.get(job_id)
    if write_report:
        click.echo(f"report: {write_reports(jobs, job_id)}", err=True)
        record = jobs.get(job_id)
    if as_json:
        click.echo(json.dumps(record.to_json(), indent=2))
    else:
        click.echo(summary_table(record, list(jobs.failures(job_id))))


@main.command(epilog=HELP_EPILOG)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.pass_obj
@_exits
def jobs(settings: Settings, limit: int) -> None:
    """Recent jobs, newest first."""
    from framefleet.core.jobstate import JobStore
    from producer.progress import plain_line

    for record in JobStore.from_url(settings.redis_url).recent(limit):
        click.echo(f"{record.job_id}  {record.model:<12} {plain_line(record)}")


@main.command(epilog=HELP_EPILOG)
@click.argument("job_id")
@click.pass_obj
@_exits
def cancel(settings: Settings, job_id: str) -> None:
    """Cancel JOB_ID: workers skip its remaining tasks."""
    from framefleet.core.jobstate import JobStore

    JobStore.from_url(settings.redis_url).cancel(job_id)
    click.echo(f"cancelled {job_id}")
