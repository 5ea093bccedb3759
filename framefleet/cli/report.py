"""`framefleet report`: the job's HTML report, (re)written on demand."""

from __future__ import annotations

from pathlib import Path

import click

from framefleet.cli.base import HELP_EPILOG, _exits, main
from framefleet.core.settings import Settings


@main.command(epilog=HELP_EPILOG)
@click.argument("job_id")
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the page to this local file instead of _framefleet/report.html under the "
    "job's output.",
)
@click.pass_obj
@_exits
def report(settings: Settings, job_id: str, out_file: Path | None) -> None:
    """Write the HTML report of JOB_ID (totals, throughput, detections per class, gallery,
    failures, videos) and print where it is.

    It is also written automatically when a job completes."""
    from framefleet.report import build_report, write_reports
    from framefleet.state.jobs import JobStore

    jobs = JobStore.from_url(settings.redis_url)
    if out_file is None:
        click.echo(write_reports(jobs, job_id))
        return
    out_file.write_text(build_report(jobs, job_id), encoding="utf-8")
    click.echo(out_file.resolve().as_uri())
