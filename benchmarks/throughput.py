"""Throughput of the framefleet pipeline against plain processes doing the same work.

Measured in one run, on the same machine, images and model:

1. ``raw loop``: one process, all cores to OpenCV: read file, decode, preprocess, forward,
   postprocess, draw, encode, write file. The hardware's single-process figure.
2. ``plain processes``: W processes (OpenCV threads = cores / W), each loading the model once and
   running the raw loop over its share of the files. What the pipeline should approach.
3. ``framefleet``: redis-server, W worker nodes of one process each, ``submit`` of the folder (or
   of an S3 prefix with ``--storage s3``), timed from submit to the job's completion.

Usage::

    .venv/bin/python benchmarks/throughput.py --images 300 --workers 2
    .venv/bin/python benchmarks/throughput.py --images 300 --workers 2 --storage s3
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

import cv2

from framefleet.core.jobstate import JobStore
from framefleet.core.modelstore import ModelStore
from framefleet.core.registry import load_registry
from framefleet.core.settings import Settings
from framefleet.core.storage import open_storage
from framefleet.inference.annotate import annotate
from framefleet.inference.imageio import decode_image, encode_image
from framefleet.inference.models import load_adapter
from framefleet.queue import create_app
from framefleet.samples import shared_dir
from framefleet.services.processes import start_worker
from framefleet.services.redis import RedisServer
from producer.submit import submit


def make_dataset(folder: Path, count: int, media: Path) -> list[Path]:
    """``count`` images cycling through the shared photos."""
    photos = sorted(p for p in (media / "images").iterdir() if p.is_file())
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(count):
        src = photos[i % len(photos)]
        dst = folder / f"{i:05d}_{src.name}"
        dst.write_bytes(src.read_bytes())
        files.append(dst)
    return files


def raw_loop(
    files: list[Path],
    out: Path,
    model: str,
    model_dir: Path,
    threads: int,
    barrier: object | None = None,
) -> float:
    """Process ``files`` in this process; return seconds spent (model load excluded)."""
    cv2.setNumThreads(threads)
    adapter = load_adapter(load_registry().get(model), ModelStore(model_dir, download=False))
    if barrier is not None:
        barrier.wait()  # type: ignore[attr-defined]
    start = time.perf_counter()
    for path in files:
        image = decode_image(path.read_bytes(), str(path))
        detections = adapter(image)
        (out / (path.name + ".jpg")).write_bytes(encode_image(annotate(image, detections), ".jpg"))
    return time.perf_counter() - start


def _plain_worker(args: tuple[list[Path], Path, str, Path, int, object]) -> float:
    return raw_loop(*args)  # type: ignore[arg-type]


def plain_processes(files: list[Path], out: Path, model: str, model_dir: Path, n: int) -> float:
    """Wall seconds for ``n`` processes to share ``files`` (after every model is loaded)."""
    threads = max(1, (os.cpu_count() or 1) // n)
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(n + 1)
        with ctx.Pool(n) as pool:
            shares = [(files[i::n], out, model, model_dir, threads, barrier) for i in range(n)]
            pending = pool.map_async(_plain_worker, shares)
            barrier.wait()
            start = time.perf_counter()
            pending.get()
            return time.perf_counter() - start


def pipeline(
    files: list[Path],
    workdir: Path,
    model: str,
    model_dir: Path,
    n: int,
    batch_size: int,
    storage: str,
) -> tuple[float, float]:
    """(wall seconds submit -> done, the job's own items/s) on a fresh Redis and ``n`` workers."""
    with RedisServer(workdir / "redis") as redis:
        threads = max(1, (os.cpu_count() or 1) // n)
        settings = Settings(
            redis_url=redis.url,
            model_dir=model_dir,
            concurrency=1,
            cv_threads=threads,
            batch_size=batch_size,
        )
        extra_env: dict[str, str] = {}
        server = None
        input_uri = str(files[0].parent)
        output_uri = str(workdir / "pipeline-out")
        if storage == "s3":
            from framefleet.services.seaweed import SeaweedServer

            server = SeaweedServer(workdir / "s3").start()
            extra_env = server.env()
            os.environ.update(extra_env)
            input_uri = server.create_bucket("bench") + "in/"
            output_uri = "s3://bench/out/"
            src = open_storage(input_uri)
            for path in files:
                src.write_bytes(path.name, path.read_bytes())
        env = {**os.environ, **settings.to_env(), **extra_env}
        workers = [start_worker(f"bench{i}", env, workdir, "--concurrency", "1") for i in range(n)]
        try:
            start = time.perf_counter()
            result = submit(settings, create_app(settings), input_uri, output_uri, model)
            jobs = JobStore.from_url(redis.url)
            while not (record := jobs.get(result.job_id or "")).finished:
                time.sleep(0.05)
            wall = time.perf_counter() - start
            if record.failed:
                raise SystemExit(
                    f"{record.failed} items failed: {list(jobs.failures(record.job_id))[:3]}"
                )
            return wall, record.rate()
        finally:
            for worker in workers:
                worker.stop()
            if server is not None:
                server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--model", default="yolox-nano")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--storage", choices=["local", "s3"], default="local")
    args = parser.parse_args()

    shared = shared_dir()
    if shared is None:
        raise SystemExit("no shared data folder: set FRAMEFLEET_SHARED_DIR")
    model_dir = Path(os.environ.get("FRAMEFLEET_MODEL_DIR", shared / "models"))
    with tempfile.TemporaryDirectory(prefix="framefleet-bench-") as tmp:
        work = Path(tmp)
        files = make_dataset(work / "in", args.images, shared / "media")
        for name in ("raw-out", "plain-out"):
            (work / name).mkdir()
        cores = os.cpu_count() or 1
        raw_s = raw_loop(files, work / "raw-out", args.model, model_dir, cores)
        plain_s = plain_processes(files, work / "plain-out", args.model, model_dir, args.workers)
        wall_s, job_rate = pipeline(
            files, work, args.model, model_dir, args.workers, args.batch_size, args.storage
        )

    n = args.images
    raw, plain, fleet = n / raw_s, n / plain_s, n / wall_s
    print(
        f"\nframefleet throughput: {n} images, model {args.model}, OpenCV {cv2.__version__}, "
        f"{cores} cores, {args.workers} workers, batch {args.batch_size}, storage {args.storage}"
    )
    print(f"{'what':<44}{'images/s':>10}{'vs plain':>10}{'vs raw':>9}")
    rows = [
        ("raw loop, 1 process, all cores", raw),
        (f"plain processes x{args.workers}", plain),
        ("framefleet, submit -> done (wall)", fleet),
        ("framefleet, job rate (first -> last item)", job_rate),
    ]
    for name, rate in rows:
        print(f"{name:<44}{rate:>10.2f}{rate / plain:>10.2f}{rate / raw:>9.2f}")


if __name__ == "__main__":
    main()
