"""framefleet's throughput against the machine's limit, measured in one run on one machine.

For each engine (cv2.dnn, onnxruntime), on the shared images cycled to ``--images`` items:

1. local limit: the whole per-image job in procs plain processes, 1 engine thread each
   (`benchmarks.limits`); framefleet local: one `framefleet worker --concurrency P` node, then
   `submit` of the folder and the wait `submit --wait` does, wall from submit to return.
2. S3 limit: the same plus one boto3 GET and two PUTs per image against a local SeaweedFS;
   framefleet S3: `submit` of the S3 prefix. SeaweedFS's own CPU time is reported.
3. naive: the OpenCV tutorial's code in Celery, one task per image, network built per call.
4. ratios framefleet / limit and framefleet / naive; p50 and p95 per-item service time (the sum of
   each result document's stage timings); peak RSS of each worker process; the producer's
   items/s and peak RSS over a folder of many small keys (at a fifth of them and all of them, to
   show memory stays flat).

Usage (the README's benchmark command)::

    .venv/bin/python -m benchmarks.throughput              # 600 images, 100k producer keys
    .venv/bin/python -m benchmarks.throughput --short      # CI: ~1 minute, same rows

Other agents or jobs on the machine skew every row alike, but not evenly over time: the load
average before and after is printed with the table; rerun when it is high.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import redis

from benchmarks.fleetrun import Fleet, FleetRun
from benchmarks.limits import plain_limit
from benchmarks.procstats import cpu_seconds, pids_matching
from benchmarks.producer_rate import make_keys
from benchmarks.shared import model_dir, shared_data
from framefleet.core.settings import Settings
from framefleet.core.storage import open_storage
from framefleet.inference.engines import ort_version
from framefleet.services.processes import LoggedProcess
from framefleet.services.redis import RedisServer

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 0.90
TARGET_RSS_MB = 350.0
TARGET_PRODUCER = 10_000.0
WARM_PER_PROCESS = 32
"""Images each process does untimed before the clock starts, in the limit and in framefleet
alike: steady state, as a worker that has been running, not a process's first allocations."""


@dataclass
class Rounds:
    """The limit and framefleet measured in turn (limit, fleet, limit, fleet, ...), so a change
    in the machine's speed during the run falls on both; figures are medians over the rounds."""

    limits: list[float] = field(default_factory=list)
    runs: list[FleetRun] = field(default_factory=list)

    def limit(self) -> float:
        return statistics.median(self.limits)

    def rate(self) -> float:
        return statistics.median(r.rate for r in self.runs)

    def limit_spread(self) -> str:
        if len(self.limits) < 2:
            return ""
        return f"rounds {min(self.limits):.1f}-{max(self.limits):.1f}"

    def ratios(self) -> list[float]:
        """framefleet / limit of each round."""
        return [r.rate / lim for r, lim in zip(self.runs, self.limits, strict=True)]

    def pooled(self) -> FleetRun:
        """All rounds' items as one run, for the latency percentiles."""
        latencies = [ms for r in self.runs for ms in r.latencies_ms]
        return FleetRun(sum(r.wall_s for r in self.runs), len(latencies), latencies)


@dataclass
class Table:
    """Rows of the result table, printed at the end."""

    rows: list[tuple[str, float, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, what: str, rate: float, ratio: str = "", extra: str = "") -> None:
        self.rows.append((what, rate, ratio, extra))
        print(f"  {what}: {rate:.1f} images/s {ratio} {extra}", file=sys.stderr, flush=True)

    def print(self, header: str) -> None:
        print("\n" + header)
        print(f"{'what':<44}{'images/s':>9}  {'ratio':<24}{'p50/p95 ms, peak RSS'}")
        for what, rate, ratio, extra in self.rows:
            print(f"{what:<44}{rate:>9.1f}  {ratio:<24}{extra}")
        for note in self.notes:
            print(note)


def make_dataset(folder: Path, count: int, media: Path) -> list[str]:
    """``count`` images cycling through the shared photos; their keys."""
    photos = sorted(p for p in (media / "images").iterdir() if p.is_file())
    folder.mkdir(parents=True, exist_ok=True)
    keys = []
    for i in range(count):
        src = photos[i % len(photos)]
        key = f"{i:05d}_{src.name}"
        (folder / key).write_bytes(src.read_bytes())
        keys.append(key)
    return keys


def copy_up(folder: Path, keys: list[str], uri: str) -> None:
    """Upload ``keys`` of ``folder`` under ``uri``."""
    dst = open_storage(uri)
    for key in keys:
        dst.write_bytes(key, (folder / key).read_bytes())


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def ratio(run: float, limit: float) -> str:
    value = run / limit
    return f"{value:.2f} of limit {'ok' if value >= TARGET_RATIO else 'MISSED'}"


def fleet_row(table: Table, what: str, rounds: Rounds, rss: float) -> None:
    run = rounds.pooled()
    extra = f"{run.percentile(0.5):.0f}/{run.percentile(0.95):.0f}, {rss:.0f} MB"
    if rss > TARGET_RSS_MB:
        extra += " RSS MISSED"
    if len(rounds.runs) > 1:
        each = rounds.ratios()
        extra += f"; rounds {min(r.rate for r in rounds.runs):.1f}-"
        extra += f"{max(r.rate for r in rounds.runs):.1f}, ratios {min(each):.2f}-{max(each):.2f}"
    table.add(what, rounds.rate(), ratio(rounds.rate(), rounds.limit()), extra)


def naive_rate(
    files: list[Path], out: Path, model: str, model_dir: Path, processes: int, work: Path
) -> float:
    """Images/s of the tutorial-in-Celery baseline (`benchmarks.naive`) on ``files``."""
    with RedisServer(work / "naive-redis") as server:
        env = {**os.environ, "NAIVE_REDIS_URL": server.url, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "celery", "-A", "benchmarks.naive", "worker"]
        cmd += [f"--concurrency={processes}", "--loglevel=INFO", "--without-mingle"]
        worker = LoggedProcess("naive worker", cmd, env, work / "naive-worker.log", cwd=ROOT)
        try:
            worker.wait_for(" ready.", 120)
            from celery import Celery

            app = Celery("naive-driver", broker=server.url, set_as_current=False)
            client = redis.Redis.from_url(server.url)
            out.mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            for path in files:
                app.send_task("naive.detect", args=[str(path), str(out), model, str(model_dir)])
            while int(client.get("naive:done") or 0) < len(files):
                if worker.process.poll() is not None:
                    raise SystemExit(f"naive worker died:\n{worker.log()[-2000:]}")
                time.sleep(0.02)
            return len(files) / (time.perf_counter() - start)
        finally:
            worker.stop()


def producer_rates(work: Path, redis_url: str, counts: list[int]) -> list[tuple[int, float, float]]:
    """(keys, items/s, peak RSS MB) of `submit` over folders of ``counts`` empty keys."""
    rows = []
    for count in counts:
        folder = work / f"producer-{count}"
        make_keys(folder, count)
        cmd = [sys.executable, "-m", "benchmarks.producer_rate", str(folder), redis_url]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
        if done.returncode != 0:
            raise SystemExit(f"producer run failed:\n{done.stderr[-2000:]}")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(
            (figures["items"], figures["items"] / figures["seconds"], figures["peak_rss_mb"])
        )
        redis.Redis.from_url(redis_url).flushdb()  # the unconsumed messages of this run
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--processes", type=int, default=2, help="worker processes (procs)")
    parser.add_argument("--model", default="yolox-nano")
    parser.add_argument("--batch-size", type=int, default=8, help="items per message")
    parser.add_argument("--producer-keys", type=int, default=100_000)
    parser.add_argument("--naive-images", type=int, default=0, help="default: --images")
    parser.add_argument("--engines", default="cv2.dnn,onnxruntime")
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 rows")
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds of limit then framefleet (medians)"
    )
    parser.add_argument(
        "--short", action="store_true", help="CI mode: 60 images, 10k producer keys"
    )
    args = parser.parse_args()
    if args.short:
        args.images, args.producer_keys, args.naive_images, args.repeat = 60, 10_000, 16, 1
    engines = [e for e in args.engines.split(",") if e]
    shared = shared_data()
    models = model_dir(shared)
    load_before = load_average()
    table = Table()
    procs = args.processes
    with tempfile.TemporaryDirectory(prefix="framefleet-bench-") as tmp:
        work = Path(tmp)
        keys = make_dataset(work / "in", args.images, shared / "media")
        warm_keys = make_dataset(work / "warm", WARM_PER_PROCESS * procs, shared / "media")
        with RedisServer(work / "redis") as server:
            settings = Settings(redis_url=server.url, model_dir=models, concurrency=procs)
            seaweed = None
            s3_env: dict[str, str] = {}
            s3_warm = ""
            if not args.no_s3:
                from framefleet.services.seaweed import SeaweedServer

                seaweed = SeaweedServer(work / "s3").start()
                s3_env = seaweed.env()
                os.environ.update(s3_env)
                bench = seaweed.create_bucket("bench")
                seaweed.create_bucket("limit")
                s3_in, s3_warm = bench + "in/", bench + "warm/"
                copy_up(work / "in", keys, s3_in)
                copy_up(work / "warm", warm_keys, s3_warm)
                weed_pids = pids_matching(str(work / "s3"))
            try:
                for engine in engines:
                    with Fleet(settings, work, procs, engine, s3_env) as fleet:
                        fleet.warm_up(
                            str(work / "warm"), str(work / f"warm-{engine}"), args.model,
                            args.batch_size,
                        )  # fmt: skip
                        local = Rounds()
                        for i in range(args.repeat):
                            local_out = work / f"limit-{engine}-{i}"
                            local_out.mkdir()
                            local.limits.append(len(keys) / plain_limit(
                                keys, processes=procs, model=args.model, model_dir=models,
                                engine=engine, source=str(work / "in"), target=str(local_out),
                                warm=WARM_PER_PROCESS,
                            ))  # fmt: skip
                            local.runs.append(fleet.run(
                                str(work / "in"), str(work / f"fleet-{engine}-{i}"), args.model,
                                args.batch_size,
                            ))  # fmt: skip
                        lim = local.limit()
                        table.add(f"local limit, {engine} ({procs} plain processes)", lim,
                                  extra=local.limit_spread())  # fmt: skip
                        fleet_row(table, f"framefleet local, {engine}", local, fleet.peak_rss_mb())
                        if engine == engines[0]:
                            first_limit = lim
                        else:
                            table.notes.append(
                                f"{engine} local limit / {engines[0]} local limit: "
                                f"{lim / first_limit:.2f}x"
                            )
                        if seaweed is None:
                            continue
                        fleet.warm_up(s3_warm, f"s3://bench/warm-{engine}/", args.model,
                                      args.batch_size)  # fmt: skip
                        s3 = Rounds()
                        limit_weed = weed_cpu = 0.0
                        for i in range(args.repeat):
                            limit_weed -= sum(cpu_seconds(p) for p in weed_pids)
                            s3.limits.append(len(keys) / plain_limit(
                                keys, processes=procs, model=args.model, model_dir=models,
                                engine=engine, source=s3_in, target=f"s3://limit/{engine}-{i}/",
                                s3_env=s3_env, warm=WARM_PER_PROCESS,
                            ))  # fmt: skip
                            limit_weed += sum(cpu_seconds(p) for p in weed_pids)
                            s3.runs.append(fleet.run(
                                s3_in, f"s3://bench/out-{engine}-{i}/", args.model,
                                args.batch_size, server_pids=weed_pids,
                            ))  # fmt: skip
                            weed_cpu += s3.runs[-1].server_cpu_s
                        table.add(f"S3 limit, {engine} ({procs} plain processes)", s3.limit(),
                                  extra=s3.limit_spread())  # fmt: skip
                        fleet_row(table, f"framefleet S3, {engine}", s3, fleet.peak_rss_mb())
                        cores = os.cpu_count() or 1
                        fleet_wall = sum(r.wall_s for r in s3.runs)
                        limit_wall = sum(len(keys) / rate for rate in s3.limits)
                        table.notes.append(
                            f"SeaweedFS CPU during framefleet S3 on {engine}: {weed_cpu:.1f} s "
                            f"over {fleet_wall:.1f} s wall "
                            f"({100 * weed_cpu / fleet_wall / cores:.0f}% of the machine); "
                            f"during the S3 limit: {limit_weed:.1f} s over {limit_wall:.1f} s"
                        )
                naive_files = [work / "in" / k for k in keys[: args.naive_images or len(keys)]]
                naive = naive_rate(naive_files, work / "naive-out", args.model, models, procs, work)
                table.add("naive: tutorial in Celery, cv2.dnn, local", naive)
                fleet_rates = [r for w, r, _, _ in table.rows if w.startswith("framefleet")]
                table.notes.append(
                    f"framefleet / naive: {min(fleet_rates) / naive:.1f}x to "
                    f"{max(fleet_rates) / naive:.1f}x"
                )
                for count, rate, rss in producer_rates(
                    work, server.url, [args.producer_keys // 5, args.producer_keys]
                ):
                    verdict = "ok" if rate >= TARGET_PRODUCER else "MISSED"
                    table.notes.append(
                        f"producer: {count} keys at {rate:,.0f} items/s ({verdict}), "
                        f"peak RSS {rss:.0f} MB"
                    )
            finally:
                if seaweed is not None:
                    seaweed.stop()
    header = (
        f"framefleet throughput: {args.images} images, {args.model}, OpenCV {cv2.__version__}, "
        f"onnxruntime {ort_version() or 'not installed'}, {os.cpu_count()} cores, "
        f"P={procs} worker processes, {args.batch_size} items/message, "
        f"{WARM_PER_PROCESS} warm-up images per process, median of {args.repeat} rounds, "
        f"load average {load_before} before, {load_average()} after"
    )
    table.print(header)


if __name__ == "__main__":
    main()
