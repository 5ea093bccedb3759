"""Run a model over a file or a small folder here, with no Redis and no Celery: ``framefleet run``.

Items go through the same per-item pipeline as a fleet worker's, so the outputs and result
documents are the fleet's (but for timings, worker and creation time). With ``processes > 1`` a
local process pool shares the items; each process loads the model once, like a worker process.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path

import cv2

from framefleet.core import defaults
from framefleet.core.inputs import (
    check_output,
    classify,
    first_media,
    input_listing,
    open_input,
)
from framefleet.core.outputs import report_key
from framefleet.core.storage import Storage, open_storage
from framefleet.inference.loaded import LoadedModel, load_model
from framefleet.inference.pipeline import ItemResult, failure, process_image
from framefleet.inference.video.whole import process_video

RUN_JOB_ID = "local"
"""The job id a local run puts in the messages it builds (it records no job anywhere)."""


@dataclass(frozen=True)
class ModelRef:
    """How each process loads the model: what `load_model` takes."""

    name: str | None = None
    model_dir: str | Path = defaults.MODEL_DIR
    models_file: str | Path | None = None
    download: bool = True
    engine: str = ""

    def load(self, threads: int = 1) -> LoadedModel:
        """Load the model (verified files, once per call); ``threads`` for onnxruntime."""
        return load_model(
            self.name,
            model_dir=self.model_dir,
            models_file=self.models_file,
            download=self.download,
            engine=self.engine,
            threads=threads,
        )


@dataclass
class RunSummary:
    """What a local run did: counts, frames, detections per class and the failures."""

    done: int = 0
    frames: int = 0
    classes: Counter[str] = field(default_factory=Counter)
    failures: list[ItemResult] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """Items that failed."""
        return len(self.failures)

    def add(self, result: ItemResult) -> None:
        """Count one item's outcome."""
        if result.ok:
            self.done += 1
            self.frames += result.frames
            self.classes.update(result.classes)
        else:
            self.failures.append(result)


def run_local(
    input_uri: str,
    output_uri: str,
    model: ModelRef,
    *,
    processes: int = 1,
    on_result: Callable[[ItemResult], None] = lambda result: None,
    max_pixels: int = defaults.MAX_PIXELS,
) -> RunSummary:
    """Process every image and video under ``input_uri`` (a file, folder or prefix) here.

    Writes, under ``output_uri``, what a fleet job writes for each item (annotated output and
    result document) and ``_framefleet/failures.jsonl``.

    Args:
        model: the model to load in each process.
        processes: local processes sharing the items (1: this process).
        on_result: called with each item's outcome as it finishes.
        max_pixels: images above this many pixels fail, refused from their header.

    Raises:
        ConfigError: the output is the input, or the input holds no image or video.
        StorageError: the input cannot be listed or the output cannot be written.
        ModelError, UnknownModelError: the model cannot be loaded.

    Example:
        >>> summary = run_local("photos/", "results/", ModelRef("yolox-nano"))
        >>> summary.done, summary.failed
        (14, 0)
    """
    src, dst, keys = _plan(input_uri, output_uri)
    summary = RunSummary()

    def record(result: ItemResult) -> None:
        summary.add(result)
        on_result(result)

    if processes <= 1:
        loaded = model.load(os.cpu_count() or 1)
        for key, kind in keys:
            record(_process(loaded, src, dst, key, kind, max_pixels))
    else:
        model.load()  # fail here, once, with the real reason, not in every child
        with ProcessPoolExecutor(
            max_workers=processes,
            mp_context=get_context("spawn"),  # no OpenCV thread pool inherited through fork
            initializer=_init_child,
            initargs=(model, max(1, (os.cpu_count() or 1) // processes)),
        ) as pool:
            tasks = [(src.uri, dst.uri, k, kind, max_pixels) for k, kind in keys]
            for result in pool.map(_child, tasks):
                record(result)
    lines = "".join(json.dumps(r.reason()) + "\n" for r in sorted(summary.failures, key=_item))
    dst.write_bytes(report_key("failures.jsonl"), lines.encode())
    return summary


def _item(result: ItemResult) -> str:
    return result.item


def _plan(input_uri: str, output_uri: str) -> tuple[Storage, Storage, list[tuple[str, str]]]:
    """The storages and the (key, kind) of every media item; a single file is a valid input."""
    (src, single), dst = open_input(input_uri), open_storage(output_uri)
    check_output(src, dst, single is not None)
    listed = input_listing(src, dst, single)
    first, _ = first_media(src, listed, lambda key, kind: None)
    rest = [(o.key, kind) for o in listed if (kind := classify(o.key)) != "skip"]
    return src, dst, [(first.key, classify(first.key)), *rest]


def _process(
    model: LoadedModel, src: Storage, dst: Storage, key: str, kind: str, max_pixels: int
) -> ItemResult:
    if kind == "image":
        return process_image(key, src, dst, model, max_pixels)
    try:
        return process_video(key, src, dst, model, job_id=RUN_JOB_ID, threads=cv2.getNumThreads())
    except Exception as exc:  # a bad video is one failed item, never a failed run
        return failure(key, exc)


_child_models: list[LoadedModel] = []  # the one model of a pool process, set by _init_child


def _init_child(model: ModelRef, threads: int) -> None:
    cv2.setNumThreads(threads)
    _child_models.append(model.load(threads))


@lru_cache(maxsize=4)
def _storage(uri: str) -> Storage:
    return open_storage(uri)


def _child(args: tuple[str, str, str, str, int]) -> ItemResult:
    src_uri, dst_uri, key, kind, max_pixels = args
    return _process(_child_models[0], _storage(src_uri), _storage(dst_uri), key, kind, max_pixels)
