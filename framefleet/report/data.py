"""What a job report shows, gathered from the job state and the result documents.

Exact figures come from Redis (counts, detections per class, failures); pictures and the
throughput timeline come from the result documents of a random sample of the succeeded items,
so the work and the page stay bounded for a million items: at most `SAMPLE` documents read,
`GALLERY` thumbnails, `VIDEOS` players and `FAILURE_ROWS` table rows.
"""

from __future__ import annotations

import base64
import heapq
import io
import logging
import posixpath
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, UnidentifiedImageError

from framefleet.core.documents import Document, ImageDocument, VideoDocument, read_document
from framefleet.core.errors import PipelineError
from framefleet.core.inputs import classify
from framefleet.core.jobrecord import JobRecord
from framefleet.core.outputs import annotated_key, result_key
from framefleet.core.results import Detections
from framefleet.core.storage import Storage
from framefleet.state.jobs import JobStore

log = logging.getLogger(__name__)

SAMPLE = 400
"""Result documents read for the timeline and the gallery (all of them for smaller jobs)."""

GALLERY = 48
"""Annotated thumbnails in the gallery, at about 15 kB each."""

THUMB_PX = 360
"""Longest side of a gallery thumbnail, pixels (shown at up to 240 CSS pixels, sharp on HiDPI)."""

VIDEOS = 6
"""Annotated videos with a player."""

EMBED_VIDEO_BYTES = 4_000_000
"""Annotated videos up to this size are embedded in the page (it then plays anywhere); larger
ones are linked next to the report."""

FAILURE_ROWS = 200
"""Rows of the failures table; the rest are in failures.jsonl."""

READERS = 16
"""Documents and images read in parallel (S3 latency, not CPU, bounds the report)."""


@dataclass(frozen=True)
class Thumb:
    """One gallery entry: the annotated image scaled down, and what was found on it."""

    item: str
    data_uri: str
    width: int
    height: int
    labels: list[tuple[str, int]]


@dataclass(frozen=True)
class VideoEntry:
    """One annotated video: where the player loads it from, and what was found in it."""

    item: str
    src: str
    embedded: bool
    frames: int
    fps: float
    tracks: int
    labels: list[tuple[str, int]]
    """Detections per class over the inferred frames, most first."""


@dataclass(frozen=True)
class ReportData:
    """Everything the page shows."""

    record: JobRecord
    failures: list[tuple[str, dict[str, Any]]]
    sampled: int
    """Result documents read (all of them when this equals the job's done count)."""
    images_sampled: int = 0
    completions: list[tuple[float, int]] = field(default_factory=list)
    """(finished at, images in the item) of each sampled document."""
    thumbs: list[Thumb] = field(default_factory=list)
    videos: list[VideoEntry] = field(default_factory=list)


def label_counts(detections: Detections) -> list[tuple[str, int]]:
    """(class name, count), most frequent first."""
    names = detections.data.get("class_name")
    labels = [str(n) for n in names] if names is not None else [str(c) for c in detections.class_id]
    return Counter(labels).most_common()


def collect(jobs: JobStore, job_id: str, dst: Storage) -> ReportData:
    """Gather the report of ``job_id`` whose outputs are in ``dst``.

    Raises:
        JobNotFound: no such job.
        BrokerError: Redis is unreachable.
    """
    record = jobs.get(job_id)
    failures = heapq.nsmallest(FAILURE_ROWS, jobs.failures(job_id), key=lambda f: f[0])
    items = jobs.sample_done(job_id, SAMPLE)
    videos = _video_items(jobs, job_id)
    with ThreadPoolExecutor(READERS) as pool:
        documents = [
            (item, doc) for item, doc in pool.map(lambda i: (i, _document(dst, i)), items) if doc
        ]
        images = [(item, doc) for item, doc in documents if isinstance(doc, ImageDocument)]
        thumbs = [t for t in pool.map(lambda e: _thumb(dst, *e), images[:GALLERY]) if t]
        players = [v for v in pool.map(lambda i: _video(dst, i), videos) if v]
    completions = [
        (doc.created_at, doc.summary.sampled_frames if isinstance(doc, VideoDocument) else 1)
        for _, doc in documents
    ]
    return ReportData(
        record=record,
        failures=failures,
        sampled=len(documents),
        images_sampled=len(images),
        completions=completions,
        thumbs=thumbs,
        videos=players,
    )


def _video_items(jobs: JobStore, job_id: str) -> list[str]:
    # Videos are few among many images, so a random sample would miss them: scan for them.
    found: list[str] = []
    for item in jobs.scan_done(job_id):
        if classify(item) == "video":
            found.append(item)
            if len(found) >= VIDEOS:
                break
    return sorted(found)


def _document(dst: Storage, item: str) -> Document | None:
    try:
        return read_document(dst.read_bytes(result_key(item)))
    except PipelineError as exc:  # a report with one picture fewer beats no report
        log.warning("report: skipped the result document of %s: %s", item, exc)
        return None


def _thumb(dst: Storage, item: str, doc: ImageDocument) -> Thumb | None:
    key = annotated_key(item)
    try:
        with Image.open(io.BytesIO(dst.read_bytes(key))) as image:
            image.draft("RGB", (THUMB_PX, THUMB_PX))  # JPEG: decode at 1/2..1/8 scale, fast
            small = image.convert("RGB")
            small.thumbnail((THUMB_PX, THUMB_PX))
            out = io.BytesIO()
            small.save(out, "JPEG", quality=72, optimize=True)
    except (PipelineError, OSError, UnidentifiedImageError) as exc:
        log.warning("report: no thumbnail of %s: %s", key, exc)
        return None
    encoded = base64.b64encode(out.getvalue()).decode()
    return Thumb(
        item=item,
        data_uri=f"data:image/jpeg;base64,{encoded}",
        width=small.width,
        height=small.height,
        labels=label_counts(doc.results),
    )


def _video(dst: Storage, item: str) -> VideoEntry | None:
    doc = _document(dst, item)
    if not isinstance(doc, VideoDocument):
        return None
    key = annotated_key(item, video=True)
    counts = Counter(doc.summary.classes)
    size = _size(dst, key)
    embedded = size is not None and size <= EMBED_VIDEO_BYTES
    if embedded:
        encoded = base64.b64encode(dst.read_bytes(key)).decode()
        src = f"data:video/mp4;base64,{encoded}"
    else:  # next to the report: _framefleet/report.html -> ../<key>
        src = posixpath.join("..", key)
    return VideoEntry(
        item=item,
        src=src,
        embedded=embedded,
        frames=doc.frames,
        fps=doc.fps,
        tracks=len(doc.summary.tracks),
        labels=counts.most_common(),
    )


def _size(dst: Storage, key: str) -> int | None:
    """Size of ``key`` from a listing (no download), None if it is missing."""
    try:
        return next((obj.size for obj in dst.list(prefix=key) if obj.key == key), None)
    except PipelineError:
        return None
