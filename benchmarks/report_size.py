"""Size and build time of the job report for big jobs, generated cheaply.

A real redis-server holds the job state; the outputs are synthetic result documents (3 random
detections each) in a local folder, and every annotated image is a hard link to one shared
sample photo, so 10k or 1M items cost little disk. The report reads only its sample, so its
size and time should stay flat as the job grows: the runs below (each size in one process,
same machine) are the baseline for each other, and the last column is what a page that
embedded every thumbnail would weigh.

Usage::

    .venv/bin/python benchmarks/report_size.py                      # 1,000 and 10,000 items
    .venv/bin/python benchmarks/report_size.py --items 1000 100000 --failed 0.01
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from framefleet.core.documents import ImageDocument, ModelInfo
from framefleet.core.outputs import annotated_key, result_key
from framefleet.core.results import Detections
from framefleet.report import build_report
from framefleet.report.data import GALLERY
from framefleet.samples import shared_dir
from framefleet.services.redis import RedisServer
from framefleet.state.jobs import JobStore

CLASSES = ["person", "car", "bicycle", "dog", "cat", "bus", "truck", "bird", "chair", "bottle"]


def make_job(jobs: JobStore, out: Path, items: int, failed_share: float, photo: Path) -> str:
    """A finished job of ``items`` images with synthetic outputs under ``out``."""
    job_id = jobs.create("file:///synthetic/in/", out.as_uri() + "/", "yolox-nano")
    jobs.add_items(job_id, items)
    jobs.finish_listing(job_id)
    rng = random.Random(0)
    info = ModelInfo("yolox-nano", "detection", "0" * 64, "cv2.dnn")
    start = time.time()
    for i in range(items):
        item = f"batch-{i // 1000:04d}/img-{i:07d}.jpg"
        if i % 50_000 == 0:  # a file takes at most 65,000 hard links (ext4): a fresh copy
            link_from = out / f"photo-{i}.jpg"
            shutil.copyfile(photo, link_from)
        if rng.random() < failed_share:
            reason = {"item": item, "error": "ImageDecodeError", "message": f"cannot decode {item}"}
            jobs.record(job_id, item, ok=False, reason=reason)
            continue
        names = rng.sample(CLASSES, 3)
        detections = Detections(
            xyxy=np.array([[10, 10, 100, 100]] * 3, np.float32),
            confidence=np.array([0.9, 0.8, 0.7], np.float32),
            class_id=np.array([CLASSES.index(n) for n in names], np.int32),
            data={"class_name": np.array(names)},
        )
        source = f"file:///synthetic/in/{item}"
        doc = ImageDocument(source, info, 1280, 720, detections, created_at=start + i / 100)
        path = out / result_key(item)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc.to_json()))
        os.link(link_from, out / annotated_key(item))
        jobs.record(job_id, item, ok=True, classes={n: 1 for n in names})
    return job_id


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--failed", type=float, default=0.01, help="share of failed items")
    args = parser.parse_args()
    shared = shared_dir()
    photo = (shared / "media" / "images" / "coral_cat_720p.jpg") if shared else None
    if photo is None or not photo.exists():
        raise SystemExit("needs ../shared/media/images/coral_cat_720p.jpg (FRAMEFLEET_SHARED_DIR)")
    with tempfile.TemporaryDirectory(prefix="framefleet-report-bench-") as tmp:
        redis = RedisServer(Path(tmp) / "redis").start()
        try:
            jobs = JobStore.from_url(redis.url)
            header = ("items", "setup s", "report s", "page MB", "all thumbs MB")
            print("{:>9} {:>8} {:>9} {:>8} {:>14}".format(*header))
            for n in args.items:
                out = Path(tmp) / f"out-{n}"
                out.mkdir()
                t0 = time.perf_counter()
                job_id = make_job(jobs, out, n, args.failed, photo)
                t1 = time.perf_counter()
                html = build_report(jobs, job_id)
                t2 = time.perf_counter()
                size = len(html.encode())
                thumbs = re.findall(r'<img src="(data:image/jpeg;base64,[^"]+)"', html)
                per_thumb = sum(len(t) for t in thumbs) / max(len(thumbs), 1)
                everything = per_thumb * jobs.get(job_id).done
                print(
                    f"{n:>9,} {t1 - t0:>8.1f} {t2 - t1:>9.2f} {size / 1e6:>8.2f} "
                    f"{everything / 1e6:>14.0f}"
                )
            print(f"gallery: {GALLERY} thumbnails at most; the page is bounded by its sample")
        finally:
            redis.stop()


if __name__ == "__main__":
    main()
