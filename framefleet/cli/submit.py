"""`framefleet submit`: list a folder or prefix and enqueue it as a job."""

from __future__ import annotations

import sys

import click

from framefleet.cli.base import (
    EXIT_ITEMS_FAILED,
    EXIT_OK,
    HELP_EPILOG,
    _exits,
    engine_option,
    main,
    model_option,
    setting_option,
)
from framefleet.cli.streaming import Duration, Until, run_follow
from framefleet.core.settings import Settings


@main.command(epilog=HELP_EPILOG)
@click.argument("input_uri")
@click.option(
    "--out",
    "output_uri",
    required=True,
    envvar="FRAMEFLEET_OUT",
    show_envvar=True,
    help="Output folder or s3:// prefix; outputs mirror the input's relative paths.",
)
@model_option
@setting_option(
    "--batch-size", setting="batch_size", type=click.IntRange(1, 1000), help="Images per task."
)
@engine_option("This job's engine (default: each worker's --engine, else the registry entry's).")
@setting_option(
    "--segment-seconds",
    setting="segment_seconds",
    type=click.FloatRange(min=0.1),
    help="Split videos into segments of this many seconds, spread over the workers.",
)
@click.option(
    "--every",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Videos: infer every N-th frame.",
)
@click.option(
    "--fps",
    "sample_fps",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Videos: infer about F frames a second instead of --every.",
)
@click.option(
    "--skip-static",
    is_flag=True,
    help="Videos: do not infer frames that barely changed since the last inferred one.",
)
@setting_option(
    "--max-failure-rate",
    setting="max_failure_rate",
    type=click.FloatRange(0, 1, min_open=True),
    help="Stop the job early when more than this share of items failed (e.g. 0.2), once "
    "--min-failure-sample items have an outcome; the rest is dropped.",
    default="1, never",
)
@setting_option(
    "--min-failure-sample",
    setting="min_failure_sample",
    type=click.IntRange(1),
    help="Items with an outcome before --max-failure-rate may stop the job.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Redo images whose outputs already exist and are complete (by default they count as "
    "done without running, so submitting again resumes).",
)
@click.option(
    "--follow",
    "follow_input",
    is_flag=True,
    help="Keep listing INPUT_URI and enqueue new (or rewritten) objects as they land; the job "
    "stays open until --until, --max-items or `framefleet cancel` closes it. The same command "
    "started again resumes it.",
)
@click.option(
    "--interval",
    type=Duration(),
    default="10s",
    show_default=True,
    envvar="FRAMEFLEET_FOLLOW_INTERVAL",
    show_envvar=True,
    help="--follow: time between listings (10s, 500ms, 2m).",
)
@click.option(
    "--until",
    type=Until(),
    default=None,
    help="--follow: close the job at this time (2026-11-25T18:00:00Z, UTC without a zone) or "
    "after this long (30m, 8h).",
)
@click.option(
    "--max-items",
    type=click.IntRange(1),
    default=None,
    help="--follow: close the job once this many items (rewrites included) were enqueued.",
)
@click.option(
    "--compact-every",
    type=Duration(),
    default="10m",
    show_default=True,
    envvar="FRAMEFLEET_COMPACT_EVERY",
    show_envvar=True,
    help="--follow: time between compactions of the results tables (_framefleet/results/).",
)
@click.option("--dry-run", is_flag=True, help="List what would be submitted; enqueue nothing.")
@click.option("--wait", is_flag=True, help="Show live progress and wait for the job to finish.")
@click.pass_obj
@_exits
def submit(
    settings: Settings,
    input_uri: str,
    output_uri: str,
    model: str | None,
    batch_size: int | None,
    engine: str | None,
    segment_seconds: float | None,
    every: int,
    sample_fps: float | None,
    skip_static: bool,
    max_failure_rate: float | None,
    min_failure_sample: int | None,
    force: bool,
    follow_input: bool,
    interval: float,
    until: float | None,
    max_items: int | None,
    compact_every: float,
    dry_run: bool,
    wait: bool,
) -> None:
    """Submit every image and video under INPUT_URI (folder, file:// or s3:// prefix), or the
    one image or video INPUT_URI names. --out must not lie inside the input."""
    from framefleet.cli.follow import follow, warn_if_no_worker
    from framefleet.core.jobrecord import JobStatus
    from framefleet.core.sampling import Sampling
    from framefleet.queue import create_app
    from framefleet.state.jobs import JobStore
    from producer.progress import summary_table
    from producer.submit import submit as do_submit

    settings = settings.with_(
        batch_size=batch_size,
        segment_seconds=segment_seconds,
        max_failure_rate=max_failure_rate,
        min_failure_sample=min_failure_sample,
    )
    sampling = Sampling(every=every, fps=sample_fps or 0.0, skip_static=skip_static)
    model = model or settings.registry().default
    if follow_input:
        if dry_run or wait:
            raise click.UsageError("--follow runs in the foreground: no --dry-run or --wait")
        run_follow(
            settings,
            input_uri,
            output_uri,
            model,
            interval_s=interval,
            until=until,
            max_items=max_items,
            compact_every_s=compact_every,
            engine=engine or "",
            force=force,
            sampling=sampling,
        )
        return
    if until is not None or max_items is not None:
        raise click.UsageError("--until and --max-items close a --follow job; add --follow")

    def show(key: str, kind: str) -> None:
        if dry_run:
            click.echo(f"{kind:5}  {key}")

    result = do_submit(
        settings,
        create_app(settings),
        input_uri,
        output_uri,
        model,
        engine=engine or "",
        dry_run=dry_run,
        on_created=lambda job_id: click.echo(job_id),
        on_item=show,
        sampling=sampling,
        force=force,
    )
    click.echo(
        f"{'would submit' if dry_run else 'submitted'} {result.items} items"
        f" in {result.messages} tasks, skipped {result.skipped} non-media keys",
        err=True,
    )
    if result.job_id is None:
        return
    # A Redis restart while waiting is ridden out (one line per retry), up to --redis-wait.
    jobs = JobStore.from_url(settings.redis_url, reconnect_s=settings.redis_wait_s if wait else 0)
    if not wait:
        warn_if_no_worker(settings, jobs, jobs.get(result.job_id))
        return
    record = follow(settings, jobs, result.job_id)  # warns itself while no worker is live
    click.echo(summary_table(record, list(jobs.failures(result.job_id))))
    # 1 too for a job stopped early (cancelled): not every item got its outcome.
    done = record.status is JobStatus.DONE and not record.failed
    sys.exit(EXIT_OK if done else EXIT_ITEMS_FAILED)
