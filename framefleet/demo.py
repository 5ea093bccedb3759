"""`framefleet demo`: the whole stack on one machine, on built-in defaults.

Starts redis-server and a SeaweedFS S3 server on free loopback ports, worker processes and Flower,
uploads the sample media into a bucket, submits them, shows live progress, prints the summary and
where the outputs are, then stops what it started (``--keep`` leaves it running).
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import click

from framefleet.core.outputs import report_key
from framefleet.core.settings import Settings
from framefleet.core.storage import open_storage
from framefleet.core.storage.s3 import clear_client_cache
from framefleet.queue import create_app
from framefleet.samples import demo_media, shared_dir
from framefleet.services.ports import free_port
from framefleet.services.processes import FRAMEFLEET, LoggedProcess, start_worker
from framefleet.services.redis import RedisServer
from framefleet.services.seaweed import SeaweedServer
from framefleet.state.jobs import JobStore

BUCKET = "framefleet-demo"


def run_demo(
    settings: Settings,
    *,
    keep: bool = False,
    workdir: Path | None = None,
    media_dir: Path | None = None,
    n_workers: int = 2,
    model: str | None = None,
    all_media: bool = False,
) -> int:
    """Run the demo; return the exit code (0, or 1 when some items failed)."""
    from producer.progress import summary_table, watch
    from producer.submit import submit

    shared = shared_dir()
    workdir = Path(workdir or tempfile.mkdtemp(prefix="framefleet-demo-")).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    if "FRAMEFLEET_MODEL_DIR" not in os.environ and shared is not None:
        settings = settings.with_(model_dir=shared / "models")
    media_dir = media_dir or (shared / "media" if shared is not None else None)
    model = model or settings.registry().default

    # Media first: a demo that cannot get its sample files starts nothing.
    files = demo_media(media_dir, settings.model_dir.parent / "media", all_media)
    with ExitStack() as stack:
        # Stopped on every way out, --keep included, until the demo has succeeded.
        redis = RedisServer(workdir / "redis").start()
        stack.callback(redis.stop)
        seaweed = SeaweedServer(workdir / "s3").start()
        stack.callback(seaweed.stop)
        processes: list[LoggedProcess] = []
        stack.callback(_stop_all, processes)
        say(f"Redis at {redis.url}, S3 (SeaweedFS) at {seaweed.endpoint_url}")

        # n_workers single-process nodes share this machine's cores.
        threads = max(1, (os.cpu_count() or 1) // n_workers)
        settings = settings.with_(redis_url=redis.url, concurrency=1, cv_threads=threads)
        os.environ.update(seaweed.env())  # this process's boto3 client talks to the demo's S3
        clear_client_cache()  # a client made before (another endpoint) must not be reused
        env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}

        src = open_storage(seaweed.create_bucket(BUCKET) + "input/")
        for path in files:
            src.write_bytes(f"{path.parent.name}/{path.name}", path.read_bytes())
        say(f"uploaded {len(files)} sample files to {src.uri}")

        for i in range(n_workers):
            processes.append(start_worker(f"demo{i + 1}", env, workdir, "--models", model))
        flower_port = free_port()
        processes.append(
            LoggedProcess(
                "flower",
                [*FRAMEFLEET, "flower", "--port", str(flower_port)],
                env,
                workdir / "flower.log",
            )
        )
        say(f"{n_workers} workers ready; Flower at http://127.0.0.1:{flower_port}")

        out_uri = f"s3://{BUCKET}/output/"
        result = submit(
            settings,
            create_app(settings),
            src.uri,
            out_uri,
            model,
            on_created=lambda job_id: say(f"job {job_id}"),
        )
        jobs = JobStore.from_url(settings.redis_url)
        record = watch(jobs, result.job_id or "")
        click.echo(summary_table(record, list(jobs.failures(record.job_id))))

        local_out = workdir / "outputs"
        dst = open_storage(out_uri)
        deadline = time.monotonic() + 60  # the worker that completed the job writes it next
        while not dst.exists(report_key("report.html")) and time.monotonic() < deadline:
            time.sleep(0.2)
        for obj in dst.list():
            target = local_out / obj.key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(dst.read_bytes(obj.key))
        say(f"outputs: {out_uri} (copied to {local_out})")
        say(f"report: {(local_out / report_key('report.html')).as_uri()}")
        say(f"logs: {workdir}")
        if keep:
            stack.pop_all()  # it worked: leave it all running, as asked
            pids = " ".join(str(p.pid) for p in processes)
            say("--keep: everything is still running. Point your shell at it with:")
            for key, value in {**seaweed.env(), "FRAMEFLEET_REDIS_URL": redis.url}.items():
                click.echo(f"export {key}={value}")
            say(
                f"stop it with: kill {pids} {redis.process.pid if redis.process else ''} "
                f"$(pgrep -f {seaweed.data_dir})"
            )
        return 1 if record.failed else 0
    return 0


def _stop_all(processes: list[LoggedProcess]) -> None:
    for process in processes:
        process.stop()


def say(text: str) -> None:
    """One line of demo narration on stderr."""
    click.echo(click.style("demo: ", fg="cyan") + text, err=True)
