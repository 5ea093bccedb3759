"""The ``framefleet`` command: submit, worker, status, jobs, cancel, models, flower, demo.

Every option has an environment variable. Worker and demo code is imported inside their commands,
so producer-side commands never import OpenCV.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from framefleet.core.errors import (
    BrokerError,
    ConfigError,
    ModelError,
    PipelineError,
    StorageError,
)
from framefleet.core.settings import Settings

EXIT_OK = 0
EXIT_ITEMS_FAILED = 1  # the job ran, and some items failed (submit --wait, status)
EXIT_CONFIG = 3  # bad option, registry file, unknown model or job id
EXIT_STORAGE = 4  # input or output storage unreachable, missing bucket
EXIT_BROKER = 5  # Redis unreachable
EXIT_MODEL = 6  # model files missing, wrong sha256, not loadable

_EXIT_FOR: list[tuple[type[PipelineError], int]] = [
    (ConfigError, EXIT_CONFIG),
    (StorageError, EXIT_STORAGE),
    (BrokerError, EXIT_BROKER),
    (ModelError, EXIT_MODEL),
]

HELP_EPILOG = """\b
Examples:
  framefleet demo                                   # everything locally, on sample media
  framefleet worker --concurrency 2 --models yolox-nano,yunet
  framefleet submit s3://photos/2026/ --model yolox-nano --out s3://results/run1/ --wait
  framefleet status 20261122-050000-a1b2c3 --watch
\b
Exit codes: 0 ok, 1 some items failed, 3 bad configuration, 4 storage unreachable,
5 Redis unreachable, 6 model files missing or invalid.
"""

F = TypeVar("F", bound=Callable[..., Any])


def _exits(fn: F) -> F:
    """Turn framefleet errors into one clear line on stderr and a named exit code."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PipelineError as exc:
            code = next((c for t, c in _EXIT_FOR if isinstance(exc, t)), EXIT_CONFIG)
            click.echo(f"framefleet: {type(exc).__name__}: {exc}", err=True)
            sys.exit(code)

    return wrapper  # type: ignore[return-value]


@click.group(epilog=HELP_EPILOG)
@click.option(
    "--redis-url", envvar="FRAMEFLEET_REDIS_URL", help="Broker and job state.", show_envvar=True
)
@click.option(
    "--models-file",
    envvar="FRAMEFLEET_MODELS",
    type=click.Path(path_type=Path),
    help="Your own model registry (TOML), added to the built-in one.",
    show_envvar=True,
)
@click.option(
    "--model-dir",
    envvar="FRAMEFLEET_MODEL_DIR",
    type=click.Path(path_type=Path),
    help="Where model files are found or downloaded to.",
    show_envvar=True,
)
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
@click.pass_context
@_exits
def main(
    ctx: click.Context,
    redis_url: str | None,
    models_file: Path | None,
    model_dir: Path | None,
    verbose: bool,
) -> None:
    """framefleet: run OpenCV deep-learning models over whole buckets of images and videos."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("botocore", "boto3", "urllib3"):  # credential and endpoint chatter
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    ctx.obj = Settings.from_env(redis_url=redis_url, models_file=models_file, model_dir=model_dir)


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
@click.option(
    "--model",
    envvar="FRAMEFLEET_MODEL",
    show_envvar=True,
    help="Registry model name (default: the registry's default, yolox-nano).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1000),
    envvar="FRAMEFLEET_BATCH_SIZE",
    show_envvar=True,
    help="Images per task.",
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
    dry_run: bool,
    wait: bool,
) -> None:
    """Submit every image and video under INPUT_URI (folder, file:// or s3:// prefix)."""
    from framefleet.core.jobstate import JobStore
    from framefleet.queue import create_app
    from producer.progress import summary_table, watch
    from producer.submit import submit as do_submit

    settings = settings.with_(batch_size=batch_size)
    model = model or settings.registry().default

    def show(key: str, kind: str) -> None:
        if dry_run:
            click.echo(f"{kind:5}  {key}")

    result = do_submit(
        settings,
        create_app(settings),
        input_uri,
        output_uri,
        model,
        dry_run=dry_run,
        on_created=lambda job_id: click.echo(job_id),
        on_item=show,
    )
    click.echo(
        f"{'would submit' if dry_run else 'submitted'} {result.items} items"
        f" in {result.messages} tasks, skipped {result.skipped} non-media keys",
        err=True,
    )
    if wait and result.job_id:
        jobs = JobStore.from_url(settings.redis_url)
        record = watch(jobs, result.job_id)
        click.echo(summary_table(record, list(jobs.failures(result.job_id))))
        sys.exit(EXIT_ITEMS_FAILED if record.failed else EXIT_OK)


@main.command(epilog=HELP_EPILOG)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(1, 256),
    envvar="FRAMEFLEET_CONCURRENCY",
    show_envvar=True,
    help="Worker processes (default: number of cores).",
)
@click.option(
    "--models",
    "models",
    envvar="FRAMEFLEET_WORKER_MODELS",
    show_envvar=True,
    help="Comma-separated models to serve (default: the registry's default).",
)
@click.option("-n", "--hostname", help="Node name, e.g. gpu1@%h (default: framefleet@%h).")
@click.option(
    "--pool",
    type=click.Choice(["prefork", "solo", "threads"]),
    default="prefork",
    show_default=True,
    help="Celery pool.",
)
@click.option("--loglevel", default="INFO", show_default=True)
@click.pass_obj
@_exits
def worker(
    settings: Settings,
    concurrency: int | None,
    models: str | None,
    hostname: str | None,
    pool: str,
    loglevel: str,
) -> None:
    """Run a worker: loads its models once per process and consumes their queues."""
    from framefleet.core.modelstore import ModelStore
    from framefleet.queue import queue_name
    from workers.worker import build_app, worker_models

    names = tuple(m.strip() for m in models.split(",") if m.strip()) if models else None
    settings = settings.with_(concurrency=concurrency, worker_models=names)
    served = worker_models(settings)
    registry, store = settings.registry(), ModelStore(settings.model_dir)
    for name in served:  # fetch and verify in the parent: children then only load
        spec = registry.get(name)
        store.files(spec)
        store.labels(spec)
    app = build_app(settings)
    argv = [
        "worker",
        f"--concurrency={settings.concurrency}",
        f"--loglevel={loglevel}",
        f"--pool={pool}",
        f"--hostname={hostname or 'framefleet@%h'}",
        f"--queues={','.join(queue_name(m) for m in served)}",
        "--without-mingle",
    ]
    app.worker_main(argv=argv)


@main.command(epilog=HELP_EPILOG)
@click.argument("job_id")
@click.option("--watch", "live", is_flag=True, help="Live progress bar until the job finishes.")
@click.option("--json", "as_json", is_flag=True, help="Print the job record as JSON.")
@click.option(
    "--write-report", is_flag=True, help="(Re)write _framefleet/summary.json and failures.jsonl."
)
@click.pass_obj
@_exits
def status(settings: Settings, job_id: str, live: bool, as_json: bool, write_report: bool) -> None:
    """Counts, throughput, ETA and failures of JOB_ID."""
    from framefleet.core.jobstate import JobStore
    from framefleet.core.summary import write_report as do_write
    from producer.progress import summary_table, watch

    jobs = JobStore.from_url(settings.redis_url)
    record = watch(jobs, job_id) if live else jobs.get(job_id)
    if write_report:
        record = do_write(jobs, job_id)
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
    from producer.progress import progress_line

    for record in JobStore.from_url(settings.redis_url).recent(limit):
        click.echo(f"{record.job_id}  {record.model:<12} {progress_line(record, width=20)}")


@main.command(epilog=HELP_EPILOG)
@click.argument("job_id")
@click.pass_obj
@_exits
def cancel(settings: Settings, job_id: str) -> None:
    """Cancel JOB_ID: workers skip its remaining tasks."""
    from framefleet.core.jobstate import JobStore

    JobStore.from_url(settings.redis_url).cancel(job_id)
    click.echo(f"cancelled {job_id}")


@main.command(name="models", epilog=HELP_EPILOG)
@click.pass_obj
@_exits
def list_models(settings: Settings) -> None:
    """The model registry: name, task and description of each model."""
    registry = settings.registry()
    for name in registry.names():
        spec = registry.get(name)
        mark = "*" if name == registry.default else " "
        click.echo(f"{mark} {name:<14} {spec.task:<15} {spec.description}")


@main.command(epilog=HELP_EPILOG)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=5555,
    show_default=True,
    envvar="FRAMEFLEET_FLOWER_PORT",
    show_envvar=True,
)
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option(
    "--basic-auth",
    envvar="FRAMEFLEET_FLOWER_BASIC_AUTH",
    show_envvar=True,
    help="user:password[,user2:password2]; set it before listening beyond loopback.",
)
@click.pass_obj
@_exits
def flower(settings: Settings, port: int, address: str, basic_auth: str | None) -> None:
    """Flower (Celery's web monitor) on the same broker."""
    env = {**os.environ, **settings.to_env()}
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "framefleet.monitor",
        "flower",
        f"--port={port}",
        f"--address={address}",
    ]
    if basic_auth:
        cmd.append(f"--basic-auth={basic_auth}")
    # exec, not a child: signals sent to `framefleet flower` must reach Flower itself.
    os.execve(sys.executable, cmd, env)


@main.command(epilog=HELP_EPILOG)
@click.option("--keep", is_flag=True, help="Leave Redis, S3, workers and Flower running.")
@click.option("--workdir", type=click.Path(path_type=Path), help="Where services keep data.")
@click.option(
    "--media-dir",
    type=click.Path(path_type=Path),
    envvar="FRAMEFLEET_MEDIA_DIR",
    show_envvar=True,
    help="Sample media to submit (default: ../shared/media).",
)
@click.option("--workers", "n_workers", type=click.IntRange(1, 16), default=2, show_default=True)
@click.option("--model", default=None, help="Registry model name.")
@click.option("--all-media", is_flag=True, help="Also submit the long sample videos.")
@click.pass_obj
@_exits
def demo(
    settings: Settings,
    keep: bool,
    workdir: Path | None,
    media_dir: Path | None,
    n_workers: int,
    model: str | None,
    all_media: bool,
) -> None:
    """The whole stack locally: Redis, S3 (SeaweedFS), workers, Flower, sample media, a job."""
    from framefleet.demo import run_demo

    sys.exit(
        run_demo(
            settings,
            keep=keep,
            workdir=workdir,
            media_dir=media_dir,
            n_workers=n_workers,
            model=model,
            all_media=all_media,
        )
    )


if __name__ == "__main__":
    main()
