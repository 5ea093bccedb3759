"""`framefleet status`, `jobs` and `cancel`: follow and steer jobs."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import click

from framefleet.cli.base import HELP_EPILOG, _exits, main
from framefleet.core.settings import Settings

if TYPE_CHECKING:
    from framefleet.core.jobrecord import JobRecord
    from framefleet.state.jobs import JobStore


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
    from framefleet.cli.follow import follow, warn_if_no_worker
    from framefleet.core.outputs import report_key
    from framefleet.core.storage import join_uri
    from framefleet.report import write_reports
    from framefleet.state.follow import FollowStore
    from framefleet.state.jobs import JobStore
    from producer.progress import summary_table

    # --watch rides out a Redis restart (one line per retry) up to --redis-wait; a one-off
    # status fails at once.
    jobs = JobStore.from_url(settings.redis_url, reconnect_s=settings.redis_wait_s if live else 0)
    record = follow(settings, jobs, job_id) if live else jobs.get(job_id)
    if write_report:
        click.echo(f"report: {write_reports(jobs, job_id)}", err=True)
        record = jobs.get(job_id)
    following = FollowStore(jobs).get(job_id)  # None unless it was submitted with --follow
    if as_json:
        data = record.to_json()
        if following is not None:
            data["follow"] = following.to_json()
        click.echo(json.dumps(data, indent=2))
    elif record.items_expired():
        click.echo(summary_table(record, [], following))
        click.echo(
            f"its per-item state (done items, failures) expired from Redis "
            f"(FRAMEFLEET_JOB_TTL_DAYS after it ended); failures are in "
            f"{join_uri(record.output_uri, report_key('failures.jsonl'))}",
            err=True,
        )
    else:
        click.echo(summary_table(record, list(jobs.failures(job_id)), following))
    warn_if_no_worker(settings, jobs, record)


@main.command(epilog=HELP_EPILOG)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option(
    "--purge",
    is_flag=True,
    help="Delete every Redis key of the jobs that ended (done, failed, cancelled) more than "
    "--older-than days ago, their record included; running and following jobs are kept.",
)
@click.option(
    "--older-than",
    "older_than_days",
    type=click.FloatRange(min=0),
    help="With --purge: days since a job ended (0: every ended job).",
)
@click.pass_obj
@_exits
def jobs(settings: Settings, limit: int, purge: bool, older_than_days: float | None) -> None:
    """Recent jobs, newest first: id, state, counts, model, creation time and input.

    Per-item state (done items, failures) leaves Redis FRAMEFLEET_JOB_TTL_DAYS after a job
    ends; `--purge --older-than DAYS` deletes ended jobs whole, now."""
    from framefleet.state.jobs import JobStore

    store = JobStore.from_url(settings.redis_url)
    if purge or older_than_days is not None:
        if not purge or older_than_days is None:
            raise click.UsageError("--purge and --older-than DAYS go together")
        purged = store.purge(older_than_days * 86400)
        click.echo(
            f"purged {len(purged)} jobs that ended more than {older_than_days:g} days ago"
            + (f": {' '.join(purged)}" if purged else ""),
            err=True,
        )
        return
    records = store.recent(limit)
    if not records:
        click.echo(
            f"no jobs in Redis at {settings.redis_url}; submit one with "
            "`framefleet submit FOLDER --out FOLDER`, or check FRAMEFLEET_REDIS_URL",
            err=True,
        )
        return
    rows = [
        (
            r.job_id,
            _state(store, r),
            f"{r.done}/{r.total}{'' if r.listed else '+'}",
            str(r.failed),
            r.model,
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.created_at)),
            r.input_uri,
        )
        for r in records
    ]
    header = ("JOB", "STATUS", "DONE/TOTAL", "FAILED", "MODEL", "CREATED (UTC)", "INPUT")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]))


def _state(store: JobStore, record: JobRecord) -> str:
    """The job's status; a job left listing by a producer that died says so (submitting the
    same input, output and model again closes it)."""
    from framefleet.core.jobrecord import JobStatus
    from framefleet.state.beats import producer_gone

    if record.status is JobStatus.LISTING and producer_gone(store, record.job_id):
        return "listing (producer gone)"
    return record.status.value


@main.command(epilog=HELP_EPILOG)
@click.argument("job_id")
@click.pass_obj
@_exits
def cancel(settings: Settings, job_id: str) -> None:
    """Cancel JOB_ID at once: its counts freeze (done, failed, cancelled), workers skip its
    remaining tasks, and its summary and report are written. A job that already ended (done,
    failed, cancelled) is final: cancel says so and exits 3.

    A job that follows its input (submit --follow) is closed instead: no new objects, the
    items already enqueued finish, and it ends done with exact counts; cancel it again to stop
    it at once."""
    from framefleet.core.errors import PipelineError
    from framefleet.core.outputs import report_key
    from framefleet.core.storage import join_uri
    from framefleet.queue import create_app
    from framefleet.report import write_page
    from framefleet.report.summary import stop_job
    from framefleet.state.follow import FollowStore
    from framefleet.state.jobs import JobStore
    from producer.follow import Follower

    jobs = JobStore.from_url(settings.redis_url)
    if FollowStore(jobs).is_open(job_id):
        record = Follower.of_job(create_app(settings), jobs, jobs.get(job_id)).close(
            "closed by framefleet cancel"
        )
        counts = f"{record.total} items, {record.done} done, {record.failed} failed"
        click.echo(
            f"closed {job_id} for new objects: {counts}; it ended {record.status.value}"
            if record.finished
            else f"closed {job_id} for new objects: {counts} so far; the rest finish, then it "
            f"ends. `framefleet cancel {job_id}` again stops it at once"
        )
        return
    record = stop_job(jobs, job_id)  # the summary is written before anything can go wrong
    click.echo(
        f"cancelled {job_id}: {record.done} done, {record.failed} failed, "
        f"{record.cancelled} cancelled; summary in "
        f"{join_uri(record.output_uri, report_key('summary.json'))}"
    )
    try:
        click.echo(f"report: {write_page(jobs, record)}", err=True)
    except PipelineError as exc:
        click.echo(
            f"the report page was not written: {exc}; `framefleet report {job_id}`", err=True
        )
