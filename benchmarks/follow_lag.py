"""`submit --follow` under a steady trickle of images: arrival-to-result lag, and producer memory.

``python -m benchmarks.follow_lag`` starts its own redis-server, SeaweedFS and one worker
(``--processes`` processes), then:

1. lag, local and S3: a producer (``framefleet submit --follow --interval``, a child process)
   follows an empty folder or prefix while one shared photo lands every ``--every`` seconds,
   ``--images`` in all; the lag is the job's own figure (`framefleet status`): seconds from the
   object's modification time in the store to its recorded outcome. S3 modification times have
   one-second resolution, so S3 lags read up to 1 s long (0.5 s on average).
2. memory: a producer follows a folder of ``--keys`` empty keys for ``--ticks`` listings at
   0.2 s while 20 keys land per tick, with no worker for its model (nothing is processed, the
   messages wait in Redis); its resident memory (VmRSS) is read at a few tick counts. Each tick
   walks the whole folder (local storage), so a tick takes longer than 0.2 s here.

Prints one table. Figures vary with the machine's load; the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.procstats import rss_mb
from benchmarks.shared import model_dir, shared_data
from framefleet.core.settings import Settings
from framefleet.core.storage import Storage, open_storage
from framefleet.services.processes import FRAMEFLEET, LoggedProcess, start_worker
from framefleet.services.redis import RedisServer
from framefleet.state.follow import FollowStore
from framefleet.state.jobs import JobStore

ROOT = Path(__file__).resolve().parents[1]


def producer(
    name: str, src: str, out: str, env: dict[str, str], work: Path, *args: str
) -> LoggedProcess:
    cmd = [*FRAMEFLEET, "submit", src, "--out", out, "--follow", *args]
    return LoggedProcess(name, cmd, env, work / f"{name}.log", cwd=ROOT)


def job_of(jobs: JobStore, timeout_s: float = 60) -> str:
    """The id of the one job in Redis, once the producer created it."""
    deadline = time.monotonic() + timeout_s
    while not (recent := jobs.recent(1)):
        if time.monotonic() > deadline:
            raise SystemExit("the producer created no job")
        time.sleep(0.05)
    return recent[0].job_id


def trickle(
    src: Storage, photos: list[Path], count: int, every_s: float, jobs: JobStore, job_id: str
) -> tuple[float, float, int]:
    """Land ``count`` photos ``every_s`` apart; wait for their outcomes; (p50, p95, lags)."""
    start = time.monotonic()
    for n in range(count):
        time.sleep(max(0.0, start + n * every_s - time.monotonic()))
        photo = photos[n % len(photos)]
        src.write_bytes(f"{n:05d}_{photo.name}", photo.read_bytes())
    deadline = time.monotonic() + 120
    while jobs.get(job_id).processed < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job_id}: not every image had an outcome after 120 s")
        time.sleep(0.1)
    info = FollowStore(jobs).get(job_id)
    if info is None or info.lag_p50_s is None or info.lag_p95_s is None:
        raise SystemExit(f"job {job_id} has no lag figures")
    return info.lag_p50_s, info.lag_p95_s, info.lags


def lag_row(
    what: str, src_uri: str, out: str, args: argparse.Namespace, env: dict[str, str], work: Path
) -> str:
    jobs = JobStore.from_url(env["FRAMEFLEET_REDIS_URL"])
    jobs.client.flushdb()
    photos = sorted(p for p in (shared_data() / "media" / "images").iterdir() if p.suffix == ".jpg")
    interval = f"{args.interval:g}s"
    follower = producer(f"follow-{what}", src_uri, out, env, work, "--interval", interval)
    try:
        job_id = job_of(jobs)
        p50, p95, n = trickle(open_storage(src_uri), photos, args.images, args.every, jobs, job_id)
    finally:
        follower.stop()
    return (
        f"{what:<6} lag  --interval {interval:<5} {n:>4} images  p50 {p50:.2f} s  p95 {p95:.2f} s"
    )


def touch_keys(folder: Path, first: int, count: int) -> None:
    """``count`` empty ``.jpg`` keys numbered from ``first``, 1000 a subfolder (so no one folder
    grows: the local walk holds one folder's names at a time)."""
    for i in range(first, first + count):
        sub = folder / f"{i // 1000:04d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{i:07d}.jpg").touch()


def memory_rows(args: argparse.Namespace, env: dict[str, str], work: Path) -> Iterator[str]:
    jobs = JobStore.from_url(env["FRAMEFLEET_REDIS_URL"])
    jobs.client.flushdb()
    folder = work / "many"
    touch_keys(folder, 0, args.keys)
    # yunet: no worker consumes its queue, so nothing is processed; only the producer runs.
    follower = producer(
        "follow-memory", str(folder), str(work / "many-out"), env, work,
        "--interval", "0.2s", "--model", "yunet",
    )  # fmt: skip
    checkpoints = sorted({2, args.ticks // 4, args.ticks // 2, args.ticks})
    added, last_tick = args.keys, 0
    try:
        job_id = job_of(jobs)
        follow = FollowStore(jobs)
        for checkpoint in checkpoints:
            while (info := follow.get(job_id)) is None or info.ticks < checkpoint:
                if info is not None and info.ticks > last_tick:  # 20 new keys a tick
                    touch_keys(folder, added, 20)
                    added, last_tick = added + 20, info.ticks
                time.sleep(0.05)
            rss = rss_mb(follower.pid)
            yield f"memory  tick {info.ticks:>4}  {info.seen:>6} keys seen  RSS {rss:.1f} MB"
    finally:
        follower.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=60, help="images in each trickle")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between images")
    parser.add_argument("--interval", type=float, default=1.0, help="--interval, seconds")
    parser.add_argument("--processes", type=int, default=1, help="worker processes")
    parser.add_argument("--keys", type=int, default=10_000, help="keys the memory run follows")
    parser.add_argument("--ticks", type=int, default=100, help="listings the memory run watches")
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 trickle")
    args = parser.parse_args()
    shared = shared_data()
    models = model_dir(shared)
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"submit --follow: a photo every {args.every:g} s, yolox-nano, {args.processes} worker "
        f"process(es), batch 1; load average before: {load_before}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="framefleet-follow-") as tmp:
        work = Path(tmp)
        with RedisServer(work / "redis") as server:
            settings = Settings(redis_url=server.url, model_dir=models, batch_size=1)
            env = {**os.environ, **settings.to_env(), "PYTHONPATH": str(ROOT)}
            seaweed = None
            if not args.no_s3:
                from framefleet.services.seaweed import SeaweedServer

                seaweed = SeaweedServer(work / "s3").start()
                env.update(seaweed.env())
                os.environ.update(seaweed.env())
                seaweed.create_bucket("follow")
            worker = start_worker(
                "follow", env, work, "--concurrency", str(args.processes), "--models", "yolox-nano"
            )
            try:
                (work / "in").mkdir()
                print(
                    lag_row("local", str(work / "in"), str(work / "out"), args, env, work),
                    flush=True,
                )
                if seaweed is not None:
                    s3_row = lag_row("S3", "s3://follow/in/", str(work / "s3-out"), args, env, work)
                    print(s3_row, flush=True)
                for row in memory_rows(args, env, work):
                    print(row, flush=True)
            finally:
                worker.stop()
                if seaweed is not None:
                    seaweed.stop()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
