"""Run one job message: read, decode, preprocess, infer, postprocess, annotate, write.

Plain functions over a `Storage` and a loaded model, with no Celery and no Redis, so they run the
same in a worker, a test or a benchmark. They yield one `ItemResult` per item and never raise for
a bad item: the task decides what to record and what to retry.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from framefleet.core.documents import ImageDocument
from framefleet.core.errors import (
    InputError,
    ModelError,
    RetryableError,
    StorageError,
    StorageUnavailable,
)
from framefleet.core.messages import ImageBatch
from framefleet.core.outputs import annotated_key, result_key
from framefleet.core.results import Detections
from framefleet.core.storage import Storage
from framefleet.inference.imageio import decode_image, encode_image
from framefleet.inference.loaded import LoadedModel
from framefleet.inference.models.base import Image

log = logging.getLogger(__name__)

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (StorageUnavailable, RetryableError)
"""Failures worth another attempt: the item is retried, not recorded as failed."""


@dataclass(frozen=True)
class ItemResult:
    """The outcome of one item.

    Attributes:
        item: input key, relative to the job's input root.
        ok: results were written.
        transient: failed, but another attempt may succeed (storage outage).
        error: exception class name on failure; message: what went wrong and what to do.
        classes: detections per class name (for the job's summary).
        frames: images the item was: 1 for an image, the frames processed for a video.
        timings_ms: milliseconds per stage.
    """

    item: str
    ok: bool
    transient: bool = False
    error: str = ""
    message: str = ""
    classes: dict[str, int] = field(default_factory=dict)
    frames: int = 1
    timings_ms: dict[str, float] = field(default_factory=dict)

    def reason(self) -> dict[str, Any]:
        """The failure as recorded in the job state and ``failures.jsonl``."""
        return {
            "item": self.item,
            "error": self.error,
            "message": self.message,
            "worker": worker_id(),
        }


def worker_id() -> str:
    """``hostname:pid`` of this process, as written in results and failure reasons."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Stopwatch:
    """Milliseconds per named stage."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = round((time.perf_counter() - start) * 1000, 3)


def class_counts(detections: Detections, label: Callable[[int], str]) -> dict[str, int]:
    """Detections per class name."""
    ids, counts = np.unique(detections.class_id, return_counts=True)
    return {label(int(i)): int(n) for i, n in zip(ids, counts, strict=True)}


def analyse_image(
    image: Image, model: LoadedModel, source: str, watch: Stopwatch | None = None
) -> ImageDocument:
    """Run ``model`` on a decoded image and return its result document (timings so far in it).

    The fleet, ``framefleet run`` and the Python API all make their documents here, so the three
    agree but for timings, worker and creation time.
    """
    watch = watch or Stopwatch()
    adapter = model.adapter
    with watch.stage("preprocess"):
        blob, meta = adapter.preprocess(image)
    with watch.stage("infer"):
        raw = adapter.infer(blob)
    with watch.stage("postprocess"):
        detections = adapter.postprocess(raw, meta)
    return ImageDocument(
        source=source,
        model=model.info,
        width=int(image.shape[1]),
        height=int(image.shape[0]),
        results=detections,
        timings_ms=watch.ms,
        worker=worker_id(),
        created_at=time.time(),
    )


def process_image(item: str, src: Storage, dst: Storage, model: LoadedModel) -> ItemResult:
    """Run ``model`` on image ``item`` of ``src`` and write its two outputs to ``dst``."""
    watch = Stopwatch()
    try:
        with watch.stage("read"):
            data = src.read_bytes(item)
        with watch.stage("decode"):
            image = decode_image(data, src.uri_for(item))
        document = analyse_image(image, model, src.uri_for(item), watch)
        detections = document.results
        with watch.stage("annotate"):
            ext = os.path.splitext(annotated_key(item))[1]
            annotated = encode_image(model.annotate(image, detections), ext)
        with watch.stage("write"):
            dst.write_bytes(annotated_key(item), annotated)
            dst.write_bytes(result_key(item), json.dumps(document.to_json()).encode())
    except Exception as exc:  # one bad item must never take the batch or the worker down
        return failure(item, exc, watch.ms)
    return ItemResult(
        item=item, ok=True, classes=class_counts(detections, model.label), timings_ms=watch.ms
    )


def failure(item: str, exc: Exception, timings_ms: dict[str, float] | None = None) -> ItemResult:
    """An `ItemResult` for ``exc``; expected errors keep their message, others are logged too."""
    if not isinstance(exc, (InputError, StorageError, ModelError, RetryableError)):
        log.exception("unexpected error on item %s", item)
    return ItemResult(
        item=item,
        ok=False,
        transient=isinstance(exc, TRANSIENT_ERRORS),
        error=type(exc).__name__,
        message=str(exc) or repr(exc),
        timings_ms=dict(timings_ms or {}),
    )


def run_image_batch(
    job: ImageBatch,
    src: Storage,
    dst: Storage,
    model: Callable[[], LoadedModel],
    skip: Callable[[str], bool] = lambda item: False,
) -> Iterator[ItemResult]:
    """Process every item of ``job`` that ``skip`` does not exclude, yielding as each finishes.

    ``model`` is called lazily, so a model that fails to load becomes a failure of each item
    (with the loading error as the reason) rather than an exception.
    """
    try:
        loaded = model()
    except Exception as exc:
        for item in job.items:
            yield failure(item, exc)
        return
    for item in job.items:
        if skip(item):
            continue
        yield process_image(item, src, dst, loaded)
