"""Redis memory a job holds per item while its per-item state is kept, and once it expired.

A real redis-server (no persistence) holds one synthetic job: ``--items`` images enqueued in
messages of 8, 1% failed, each success with 2 classes, recorded through `JobStore.record` as
workers do. ``used_memory`` (INFO memory) is read on an empty server, once the job has ended
(its per-item keys still there: what every job kept forever before retention), and after those
keys expired (``--ttl`` seconds after the end; FRAMEFLEET_JOB_TTL_DAYS in production).

Usage::

    .venv/bin/python benchmarks/retention.py                 # 10,000 items
    .venv/bin/python benchmarks/retention.py --items 100000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from framefleet.services.redis import RedisServer
from framefleet.state.jobs import JobStore

BATCH = 8


def memory(jobs: JobStore) -> tuple[int, int, int]:
    """used_memory, used_memory_dataset (INFO memory) and the sum of MEMORY USAGE of every
    framefleet key, in bytes."""
    info = jobs.client.info("memory")
    keys = jobs.client.scan_iter(match=f"{jobs.prefix}:*", count=1000)
    usage = sum(int(jobs.client.memory_usage(key, samples=0) or 0) for key in keys)
    return int(info["used_memory"]), int(info["used_memory_dataset"]), usage


def run_job(jobs: JobStore, items: int) -> str:
    """A job of ``items`` images, every one recorded: it ends done."""
    job_id = jobs.create("file:///synthetic/in/", "file:///synthetic/out/", "yolox-nano")
    for message_no, first in enumerate(range(0, items, BATCH)):
        jobs.add_items(job_id, min(BATCH, items - first), message_no=message_no)
    jobs.finish_listing(job_id)
    for i in range(items):
        item = f"batch-{i // 1000:04d}/img-{i:07d}.jpg"
        if i % 100 == 99:
            reason = {"item": item, "error": "ImageDecodeError", "message": f"cannot decode {item}"}
            jobs.record(job_id, item, ok=False, reason=reason)
        else:
            jobs.record(job_id, item, ok=True, classes={"person": 2, "car": 1})
    return job_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--ttl", type=int, default=2, help="retention in seconds (default 2)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp) / "redis").start()
        try:
            jobs = JobStore.from_url(redis.url, item_ttl_s=args.ttl)
            empty = memory(jobs)
            job_id = run_job(jobs, args.items)
            record = jobs.get(job_id)
            assert record.finished, record.status
            ended = memory(jobs)
            deadline = time.monotonic() + args.ttl + 30
            while jobs.client.exists(f"{jobs.prefix}:job:{job_id}:done"):
                if time.monotonic() > deadline:
                    raise SystemExit("the per-item keys did not expire")
                time.sleep(0.2)
            expired = memory(jobs)
            after = jobs.get(job_id)
            keys = sorted(jobs.client.scan_iter(match=f"{jobs.prefix}:*"))
            jobs.client.flushall()  # the floor: what the server keeps with no key at all
            flushed = memory(jobs)
        finally:
            redis.stop()
    n = args.items
    print(f"job of {n:,} items ({after.done:,} done, {after.failed:,} failed): {record.status}")
    print("bytes over an empty server (per item in brackets):")
    print(f"{'':22} {'used_memory':>20} {'used_memory_dataset':>20} {'MEMORY USAGE keys':>20}")
    rows = (("ended, per-item kept", ended), ("after retention", expired), ("FLUSHALL", flushed))
    for name, values in rows:
        cells = [f"{v - e:>10,} ({(v - e) / n:5.1f})" for v, e in zip(values, empty, strict=True)]
        print(f"{name:22} " + " ".join(f"{c:>20}" for c in cells))
    print(f"keys left: {', '.join(keys)}")


if __name__ == "__main__":
    main()
