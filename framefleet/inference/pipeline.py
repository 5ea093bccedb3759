"""Run one job message: read, decode, preprocess, infer, postprocess, annotate, write, with the
reads and writes of some images overlapping the forward of others (`run_images`).

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
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from framefleet.core import defaults
from framefleet.core.documents import Document, ImageDocument
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
from framefleet.core.tables import Rows
from framefleet.inference.engines import Blob
from framefleet.inference.imageio import decode_image, encode_image
from framefleet.inference.loaded import LoadedModel
from framefleet.inference.models.base import Adapter, Image, Meta

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
        document: the result document written (None on failure), for the results tables.
    """

    item: str
    ok: bool
    transient: bool = False
    error: str = ""
    message: str = ""
    classes: dict[str, int] = field(default_factory=dict)
    frames: int = 1
    timings_ms: dict[str, float] = field(default_factory=dict)
    document: Document | None = field(default=None, repr=False)

    def add_rows(self, rows: Rows, read: Callable[[str], bytes]) -> None:
        """Add this outcome's rows to the results tables' ``rows``: its document's (a video's
        frames read with ``read``), or its failure's. A video segment adds none: its merged
        video has the rows."""
        if self.ok and self.document is None:
            return
        rows.add_outcome(
            self.item,
            self.document,
            error=self.error,
            message=self.message,
            worker=worker_id(),
            read=read,
        )

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


def class_counts(
    detections: Detections, label: Callable[[int], str], task: str = ""
) -> dict[str, int]:
    """Detections per class name; a classifier's top-1 class only (its other rows are the
    runners-up, not things found)."""
    if task == "classification":
        detections = detections[:1]
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
    return image_document(image, detections, model, source, watch)


def image_document(
    image: Image,
    detections: Detections,
    model: LoadedModel,
    source: str,
    watch: Stopwatch,
    warnings: Sequence[str] = (),
) -> ImageDocument:
    """The result document of ``detections`` found on ``image`` (``warnings``: what the decoder
    said of damage it decoded through)."""
    return ImageDocument(
        source=source,
        model=model.info,
        width=int(image.shape[1]),
        height=int(image.shape[0]),
        results=detections,
        timings_ms=watch.ms,
        worker=worker_id(),
        created_at=time.time(),
        warnings=tuple(warnings),
    )


@dataclass
class Prepared:
    """One image on its way through a batch: read, decoded and preprocessed, or failed."""

    item: str
    watch: Stopwatch
    image: Image | None = None
    blob: Blob | None = None
    meta: Meta | None = None
    error: Exception | None = None
    skipped: bool = False
    warnings: list[str] = field(default_factory=list)


def prepare(
    item: str,
    src: Storage,
    adapter: Adapter,
    max_pixels: int = defaults.MAX_PIXELS,
    skip: Callable[[str], bool] | None = None,
) -> Prepared:
    """Read, decode and preprocess ``item``; runs in the reader thread, beside the forward.

    ``skip`` is asked first (in a worker: count the start in Redis, or find the item done), so
    its round trip waits here rather than in the forward's thread; an error it raises (Redis
    gone) reaches the caller, it is not the item's failure. An image above ``max_pixels``
    (width × height, read from its header) fails undecoded."""
    watch = Stopwatch()
    if skip is not None and skip(item):
        return Prepared(item, watch, skipped=True)
    warnings: list[str] = []
    try:
        with watch.stage("read"):
            data = src.read_bytes(item)
        with watch.stage("decode"):
            image = decode_image(data, src.uri_for(item), max_pixels=max_pixels, warnings=warnings)
        with watch.stage("preprocess"):
            blob, meta = adapter.preprocess(image)
    except Exception as exc:  # recorded as this item's failure, never the batch's
        return Prepared(item, watch, error=exc)
    return Prepared(item, watch, image=image, blob=blob, meta=meta, warnings=warnings)


def detect_group(adapter: Adapter, group: Sequence[Prepared]) -> list[Detections | Exception]:
    """Forward and postprocess ``group`` (already prepared) with one batched forward where the
    engine takes it. An item that failed earlier keeps its error; a batch whose forward fails
    is rerun one image at a time, so only the image at fault fails."""
    ready = [p for p in group if p.blob is not None and p.meta is not None]
    error: Exception | None = None
    start = time.perf_counter()
    try:
        raws = adapter.infer_batch([p.blob for p in ready if p.blob is not None])
    except Exception as exc:
        if len(ready) > 1:
            singles = {id(p): detect_group(adapter, [p])[0] for p in ready}
            return [_outcome(p.error, singles.get(id(p))) for p in group]
        raws, error = [], exc
    infer_ms = round((time.perf_counter() - start) * 1000, 3)
    found: dict[int, Detections | Exception] = {}
    for p, raw in zip(ready, raws, strict=True):
        p.watch.ms["infer"] = infer_ms  # the whole batch's forward, shared by its images
        try:
            with p.watch.stage("postprocess"):
                found[id(p)] = adapter.postprocess(raw, p.meta)  # type: ignore[arg-type]
        except Exception as exc:
            found[id(p)] = exc
    return [_outcome(p.error, found.get(id(p)), error) for p in group]


def _outcome(*candidates: Detections | Exception | None) -> Detections | Exception:
    """The first candidate that is not None (an empty `Detections` is falsy, yet an outcome)."""
    return next(c for c in candidates if c is not None)


def finish(
    prepared: Prepared, detections: Detections, src: Storage, dst: Storage, model: LoadedModel
) -> ItemResult:
    """Annotate, encode and write one image's two outputs; runs in the writer thread."""
    item, watch, image = prepared.item, prepared.watch, prepared.image
    try:
        if image is None:
            raise RuntimeError(f"{item} reached the writer without an image")
        with watch.stage("annotate"):
            ext = os.path.splitext(annotated_key(item))[1]
            annotated = encode_image(model.annotate(image, detections), ext)
        source = src.uri_for(item)
        document = image_document(image, detections, model, source, watch, prepared.warnings)
        with watch.stage("write"):
            dst.write_bytes(annotated_key(item), annotated)
            dst.write_bytes(result_key(item), json.dumps(document.to_json()).encode())
    except Exception as exc:  # one bad item must never take the batch or the worker down
        return failure(item, exc, watch.ms)
    return ItemResult(
        item=item,
        ok=True,
        classes=class_counts(detections, model.label, model.info.task),
        timings_ms=watch.ms,
        document=document,
    )


def process_image(
    item: str,
    src: Storage,
    dst: Storage,
    model: LoadedModel,
    max_pixels: int = defaults.MAX_PIXELS,
) -> ItemResult:
    """Run ``model`` on image ``item`` of ``src`` and write its two outputs to ``dst``."""
    return next(run_images([item], src, dst, model, max_pixels))


@dataclass
class IoThreads:
    """The reader and writer threads that run beside the forward. A worker process keeps one
    for its life, so every message reuses the same two threads (and their allocator arenas)
    instead of starting its own; `run_images` makes a temporary one when given none.

    Example:
        >>> io = IoThreads()
        >>> results = list(run_images(keys, src, dst, model, io=io))
        >>> io.close()
    """

    reader: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="framefleet-read")
    )
    writer: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="framefleet-write")
    )

    def close(self) -> None:
        """Finish queued work and stop both threads."""
        self.reader.shutdown()
        self.writer.shutdown()


@contextmanager
def _threads(io: IoThreads | None) -> Iterator[IoThreads]:
    if io is not None:
        yield io
        return
    own = IoThreads()
    try:
        yield own
    finally:
        own.close()


def run_images(
    items: Iterable[str],
    src: Storage,
    dst: Storage,
    model: LoadedModel,
    max_pixels: int = defaults.MAX_PIXELS,
    io: IoThreads | None = None,
    skip: Callable[[str], bool] | None = None,
) -> Iterator[ItemResult]:
    """Process ``items`` with I/O overlapping compute, yielding each result in item order (none
    for an item ``skip``, asked in the reader thread, excludes).

    Three stages run at once: a reader thread reads, decodes and preprocesses the next images
    (up to two forward batches ahead), this thread runs the forward (``engine.max_batch`` images
    at a time) and postprocess, and a writer thread annotates, encodes and writes finished
    images. OpenCV, onnxruntime and boto3 release the GIL, so the stages really overlap, and on
    a remote store the GETs and PUTs hide behind the forward. Never raises for a bad item;
    an image above ``max_pixels`` is refused from its header, undecoded.

    Example:
        >>> [r.ok for r in run_images(["a.jpg", "b.jpg"], src, dst, model)]
        [True, True]
    """
    adapter = model.adapter
    step = max(1, adapter.engine.max_batch)
    todo = iter(items)
    with _threads(io) as threads:
        reader, writer = threads.reader, threads.writer
        ahead: deque[Future[Prepared]] = deque()
        written: deque[Future[ItemResult]] = deque()

        def read_ahead() -> None:
            while len(ahead) < 2 * step and (item := next(todo, None)) is not None:
                ahead.append(reader.submit(prepare, item, src, adapter, max_pixels, skip))

        read_ahead()
        while ahead:
            group = [ahead.popleft().result() for _ in range(min(step, len(ahead)))]
            read_ahead()
            group = [p for p in group if not p.skipped]
            for prepared, outcome in zip(group, detect_group(adapter, group), strict=True):
                if isinstance(outcome, Detections):
                    written.append(writer.submit(finish, prepared, outcome, src, dst, model))
                else:
                    written.append(_resolved(failure(prepared.item, outcome, prepared.watch.ms)))
            while written and written[0].done():
                yield written.popleft().result()
        while written:
            yield written.popleft().result()


def _resolved(result: ItemResult) -> Future[ItemResult]:
    future: Future[ItemResult] = Future()
    future.set_result(result)
    return future


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
    max_pixels: int = defaults.MAX_PIXELS,
    io: IoThreads | None = None,
) -> Iterator[ItemResult]:
    """Process every item of ``job`` that ``skip`` does not exclude, yielding as each finishes
    (``io``: the process's reader and writer threads, if it keeps them).

    ``model`` is called lazily, so a model that fails to load becomes a failure of each item
    (with the loading error as the reason) rather than an exception.
    """
    try:
        loaded = model()
    except Exception as exc:
        for item in job.items:
            yield failure(item, exc)
        return
    yield from run_images(job.items, src, dst, loaded, max_pixels, io, skip)
