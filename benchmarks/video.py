"""One video through the fleet in segments against one process doing the same work sequentially.

Measured in one run, on the same machine, video and model:

1. ``sequential``: one process, all cores to OpenCV and FFmpeg: decode every frame (PyAV), infer,
   track (ByteTrack), draw, encode H.264 (PyAV, same settings), write the JSON lines.
2. ``framefleet``: redis-server, W worker nodes of one process each (OpenCV threads = cores / W),
   ``submit`` of a folder holding the video with ``--segment-seconds S``, timed from submit to
   the job's completion: plan, segments, merge and the job report included.

Usage::

    .venv/bin/python -m benchmarks.video
    .venv/bin/python -m benchmarks.video --video intel_bottle-detection.mp4 --segment-seconds 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import cv2

from benchmarks.shared import model_dir, shared_data
from framefleet.core.settings import Settings
from framefleet.inference.loaded import load_model
from framefleet.inference.video.encode import H264Writer
from framefleet.inference.video.frames import decode
from framefleet.inference.video.probe import probe
from framefleet.inference.video.tracking import ByteTracker
from framefleet.queue import create_app
from framefleet.services.processes import start_worker
from framefleet.services.redis import RedisServer
from framefleet.state.jobs import JobStore
from producer.submit import submit


def sequential(video: Path, out: Path, model_name: str, model_dir: Path) -> tuple[float, int]:
    """Seconds for one process to decode, infer, track, draw and encode every frame."""
    cores = os.cpu_count() or 1
    cv2.setNumThreads(cores)
    model = load_model(model_name, model_dir=model_dir, download=False)
    start = time.perf_counter()
    facts = probe(video, video.name)
    tracker = ByteTracker(float(facts.fps))
    frames = 0
    with (
        H264Writer(
            out / "sequential.mp4", Fraction(facts.fps), facts.width, facts.height, cores
        ) as writer,
        (out / "sequential.jsonl").open("w") as lines,
    ):
        for frame in decode(video, video.name, 0, None, facts.frames, cores):
            detections = tracker.update(model.adapter(frame.image))
            lines.write(json.dumps({"frame": frame.index, "results": detections.to_json()}) + "\n")
            writer.write(model.annotate(frame.image, detections))
            frames += 1
    return time.perf_counter() - start, frames


def fleet(
    video: Path, work: Path, model: str, model_dir: Path, workers: int, seconds: float
) -> tuple[float, int, int]:
    """(wall seconds submit -> done, segments, workers that made frames)."""
    folder = work / "in"
    folder.mkdir()
    shutil.copyfile(video, folder / video.name)
    with RedisServer(work / "redis") as redis:
        settings = Settings(
            redis_url=redis.url,
            model_dir=model_dir,
            concurrency=1,
            cv_threads=max(1, (os.cpu_count() or 1) // workers),
            segment_seconds=seconds,
        )
        env = {**os.environ, **settings.to_env()}
        nodes = [
            start_worker(f"vbench{i}", env, work, "--concurrency", "1") for i in range(workers)
        ]
        try:
            jobs = JobStore.from_url(redis.url)
            start = time.perf_counter()
            result = submit(settings, create_app(settings), str(folder), str(work / "out"), model)
            while not (record := jobs.get(result.job_id or "")).finished:
                time.sleep(0.02)
            wall = time.perf_counter() - start
            if record.failed:
                raise SystemExit(f"the video failed: {list(jobs.failures(record.job_id))}")
            doc = json.loads((work / "out" / f"{video.name}.json").read_text())
            return wall, len(doc["segments"]), len(doc["summary"]["frames_by_worker"])
        finally:
            for node in nodes:
                node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--video", default="intel_one-by-one-person-detection.mp4")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--segment-seconds", type=float, default=10.0)
    parser.add_argument("--model", default="yolox-nano")
    args = parser.parse_args()

    shared = shared_data()
    models = model_dir(shared)
    video = shared / "media" / "video" / args.video
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="framefleet-vbench-") as tmp:
        work = Path(tmp)
        seq_s, frames = sequential(video, work, args.model, models)
        fleet_s, segments, makers = fleet(
            video, work, args.model, models, args.workers, args.segment_seconds
        )
    print(
        f"\nframefleet video: {args.video}, {frames} frames, model {args.model}, OpenCV "
        f"{cv2.__version__}, {os.cpu_count()} cores, load average {load:.2f} at start"
    )
    print(f"{'what':<58}{'wall s':>8}{'frames/s':>10}")
    print(f"{'sequential, 1 process, all cores (decode+infer+encode)':<58}{seq_s:>8.2f}"
          f"{frames / seq_s:>10.1f}")  # fmt: skip
    label = f"framefleet, {args.workers} workers, {segments} segments of {args.segment_seconds:g} s"
    print(f"{label:<58}{fleet_s:>8.2f}{frames / fleet_s:>10.1f}")
    print(f"framefleet / sequential (speed ratio): {seq_s / fleet_s:.2f}  "
          f"(target >= 0.90; frames made by {makers} workers)")  # fmt: skip


if __name__ == "__main__":
    main()
