"""The naive baseline: the OpenCV tutorial's code in a Celery task, one task per image, the
network built on every call, OpenCV's default threads. What people write first.

Run by `throughput.py` as ``celery -A benchmarks.naive worker``; the broker is
``NAIVE_REDIS_URL``. Each task counts itself in Redis (``naive:done``), so the driver knows when
all are through.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import cast

import cv2
import redis
from celery import Celery

from framefleet.core.modelstore import ModelStore
from framefleet.core.registry import load_registry
from framefleet.inference.annotate import annotate
from framefleet.inference.engines import CvDnnEngine
from framefleet.inference.models import FAMILIES
from framefleet.inference.models.preprocessing import Image

app = Celery("naive", broker=os.environ.get("NAIVE_REDIS_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True)

DONE_KEY = "naive:done"


@app.task(name="naive.detect")
def detect(path: str, out_dir: str, model: str, model_dir: str) -> None:
    """Detect objects in ``path`` and write the annotated image and a JSON next to it."""
    spec = load_registry().get(model)
    store = ModelStore(Path(model_dir), download=False)
    files = {role: Path(model_dir) / f.path for role, f in spec.files.items()}
    net = CvDnnEngine.from_file(files["model"])  # the tutorial: cv2.dnn.readNet on every call
    adapter = FAMILIES[spec.family](spec, net, store.labels(spec))
    image = cast(Image, cv2.imread(path))
    detections = adapter(image)
    name = Path(path).name
    cv2.imwrite(str(Path(out_dir) / (name + ".jpg")), annotate(image, detections, adapter.labels))
    (Path(out_dir) / (name + ".json")).write_text(json.dumps(detections.to_json()))
    redis.Redis.from_url(os.environ["NAIVE_REDIS_URL"]).incr(DONE_KEY)
