"""Redis work per image, and how many worker processes one Redis can feed.

Measured in one run, on this machine:

1. ``ops/image``: a real job (local folder, one `framefleet worker` process, ``--batch-size``
   images per task) between two reads of Redis ``INFO commandstats``; every command the broker
   (Celery/kombu: queue, unacked bookkeeping, events for Flower) and the job state (Lua records,
   cancel checks, skip checks) sent, divided by the images. Also per command.
2. ``images/s per process``: that job's images over its wall time (one process, 1 OpenCV thread).
   The benchmark waits for the job by blocking on its finished token (one BLMOVE, subtracted),
   so what is counted is the fleet's own traffic.
3. ``Redis ops/s``: ``redis-benchmark`` on the same server, 50 clients, the commands the fleet
   uses most (no pipelining: workers send one command at a time).

Then: processes one Redis feeds = Redis ops/s / (ops/image x images/s per process).

Redis CPU is given whole (``INFO cpu`` around the job) and without Redis's idle cost over the
same wall (its timers and the idle worker's polling, measured over a quiet spell just before):
idle CPU grows with the wall, so a slower run pays more of it per image. Then the fleet state's
own two calls per message are timed alone, back to back and with Redis idling between them:
where waking Redis is dear (a small VM), that gap is most of what a lone worker costs it.

Usage::

    .venv/bin/python -m benchmarks.redis_ops --images 300 --batch-size 8 [--concurrency 2]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from benchmarks.shared import model_dir, shared_data
from framefleet.core.settings import Settings
from framefleet.queue import create_app
from framefleet.services.processes import start_worker
from framefleet.services.redis import RedisServer
from framefleet.state.jobs import JobStore, Outcome
from framefleet.state.leases import LeaseStore
from producer.submit import submit

BENCH_TESTS = "get,set,lpush,rpop,sadd,hset"


def commandstats(client: redis.Redis) -> dict[str, int]:
    """Calls per command since the server started."""
    info = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in info.items()}


def command_us(client: redis.Redis) -> dict[str, int]:
    """Microseconds spent in each command since the server started (a script's own commands
    count both on their own line and in EVALSHA's)."""
    info = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["usec"]) for name, v in info.items()}


def round_trips(client: redis.Redis) -> int:
    """Reads Redis served from its clients since it started (a pipeline or a script is one)."""
    return int(client.info("stats")["total_reads_processed"])


def cpu_s(client: redis.Redis) -> float:
    """CPU seconds the server used since it started (user + system, all its threads)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def redis_benchmark(port: int, requests: int) -> dict[str, float]:
    """requests/s per test from ``redis-benchmark -q``."""
    out = subprocess.run(
        [
            "redis-benchmark",
            "-p",
            str(port),
            "-q",
            "-n",
            str(requests),
            "-c",
            "50",
            "-t",
            BENCH_TESTS,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    rates = {}
    for line in out.replace("\r", "\n").splitlines():
        found = re.match(r"^(\S+)(?: \(.*\))?: ([\d.]+) requests per second", line.strip())
        if found:
            rates[found.group(1).lower()] = float(found.group(2))
    return rates


def script_cost(url: str, messages: int, gap_s: float) -> float:
    """Redis CPU seconds per message for the two calls a message of 8 images makes to the fleet
    state (`LeaseStore.begin`, `JobStore.record_many`), ``gap_s`` apart: back to back (Redis
    busy) or with pauses (Redis idles and wakes for each call, as it does beside one worker)."""
    jobs = JobStore.from_url(url, prefix="framefleet-bench")
    leases = LeaseStore(jobs.conn, jobs.keys)
    job_id = jobs.create("file:///in/", "file:///out/", "yolox-nano")
    jobs.add_items(job_id, messages * 8)
    jobs.finish_listing(job_id)
    client = jobs.client
    start = cpu_s(client)
    for m in range(messages):
        items = [f"{m:05d}_{i}.jpg" for i in range(8)]
        leases.begin(f"bench-{m}", job_id, "t", "q", {"items": items}, "bench:1", items)
        time.sleep(gap_s)
        outcomes = [Outcome(item, True, classes={"person": 2}) for item in items]
        jobs.record_many(job_id, outcomes, f"bench-{m}")
        time.sleep(gap_s)
    return (cpu_s(client) - start) / messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--idle-s", type=float, default=5.0, help="quiet spell measured first")
    parser.add_argument(
        "--concurrency", type=int, default=1, help="worker processes (Redis idles less between)"
    )
    args = parser.parse_args()
    photos = sorted(p for p in (shared_data() / "media" / "images").iterdir() if p.is_file())
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis") as server:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for i in range(args.images):
            (folder / f"{i:05d}_{photos[i % len(photos)].name}").write_bytes(
                photos[i % len(photos)].read_bytes()
            )
        settings = Settings(
            redis_url=server.url,
            model_dir=model_dir(shared_data()),
            concurrency=args.concurrency,
            batch_size=args.batch_size,
            cv_threads=1,
        )
        env = {**os.environ, **settings.to_env()}
        worker = start_worker("ops", env, Path(tmp), "--concurrency", str(args.concurrency))
        client = redis.Redis.from_url(server.url)
        jobs = JobStore.from_url(server.url)
        try:
            time.sleep(2)  # let the worker's start-up chatter pass
            # Redis's own idle cost (its timers, the idle worker's polling) over a quiet spell,
            # so that what the job itself cost can be told apart from the wall it took.
            idle_start, idle_cpu = time.monotonic(), cpu_s(client)
            time.sleep(args.idle_s)
            idle_rate = (cpu_s(client) - idle_cpu) / (time.monotonic() - idle_start)
            before, cpu_before, start = commandstats(client), cpu_s(client), time.monotonic()
            us_before, reads_before = command_us(client), round_trips(client)
            done = submit(settings, create_app(settings), str(folder), f"{tmp}/out", "yolox-nano")
            # Blocks in Redis on the job's finished token (BLMOVE), not a polling loop.
            waits = 0
            while not jobs.wait_for_change(done.job_id or "", 20.0):
                waits += 1
            wall = time.monotonic() - start
            after, cpu_used = commandstats(client), cpu_s(client) - cpu_before
            us_after, reads = command_us(client), round_trips(client) - reads_before
        finally:
            worker.stop()
        delta = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
        delta["blmove"] = delta.get("blmove", 0) - (waits + 1)  # the benchmark's own wait
        delta = {k: v for k, v in delta.items() if v > 0 and k != "info"}
        total = sum(delta.values())
        per_image = total / args.images
        rate = args.images / wall / args.concurrency  # per worker process
        print(
            f"job: {args.images} images, batch {args.batch_size}, {args.concurrency} worker "
            "process(es): "
            f"{wall:.1f} s, {rate * args.concurrency:.1f} images/s"
        )
        print(f"Redis commands per image: {per_image:.2f}  ({total} in all)")
        print(
            f"round trips (reads Redis served) per image: {reads / args.images:.2f}; the "
            "benchmark's own INFO and waits included"
        )
        spent = {k: us_after[k] - us_before.get(k, 0) for k in delta}
        for name, calls in sorted(delta.items(), key=lambda kv: -kv[1])[:16]:
            print(
                f"  {name:<12} {calls / args.images:6.2f} per image, "
                f"{spent[name] / args.images:6.1f} us per image in the command"
            )
        busy = script_cost(server.url, 300, 0.0)
        woken = script_cost(server.url, 40, 0.05) - idle_rate * 0.1
        print(
            f"the fleet state's two calls per message, alone: {busy * 1e6:.0f} us of Redis CPU "
            f"back to back, {woken * 1e6:.0f} us when Redis idles 50 ms before each (idle "
            "subtracted): on a machine where waking costs this much, Redis CPU per image falls "
            "as the fleet keeps it busy"
        )
        rates = redis_benchmark(server.port, args.requests)
        for name, value in rates.items():
            print(f"redis-benchmark {name:<6} {value:>10.0f} ops/s")
        slowest = min(rates.values())
        print(
            f"processes one Redis feeds at the slowest command ({slowest:.0f} ops/s): "
            f"{slowest / (per_image * rate):.0f}"
        )
        # Commands run inside Lua count above one by one; Redis's own CPU time per image is the
        # figure that holds them all (a Lua call costs more than a plain command).
        per_image_cpu = cpu_used / args.images
        print(
            f"Redis CPU per image: {per_image_cpu * 1e6:.0f} us -> one Redis core serves "
            f"{1 / per_image_cpu:.0f} images/s = {1 / per_image_cpu / rate:.0f} processes "
            f"at {rate:.1f} images/s each"
        )
        # Idle CPU grows with the wall, not with the work: a slower job (a loaded machine, a
        # slower model) pays more of it per image. Without it, what the images themselves cost:
        net = max(0.0, cpu_used - idle_rate * wall) / args.images
        print(
            f"  of which idle (Redis alone, {idle_rate * 1e3:.2f} ms/s over the {wall:.1f} s "
            f"wall): {idle_rate * wall / args.images * 1e6:.0f} us; the images' own: "
            f"{net * 1e6:.0f} us -> one Redis core serves {1 / max(net, 1e-9):.0f} images/s"
        )


if __name__ == "__main__":
    main()
