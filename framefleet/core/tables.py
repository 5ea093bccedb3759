"""The results as two tables: one row per input item, one row per detection.

Declared here, beside the result documents they are made from, and versioned with them
(`TABLES_VERSION` is stored in every file's metadata). What a row holds:

``images``: one row per input (an image, or a whole video)::

    item, job_id, source, kind ("image" | "video"), status ("done" | "failed"), error, message
    (a failure's, or a done image's decoder warnings: "Corrupt JPEG data: ..."),
    width, height, frames (1 for an image; sampled frames of a video), fps,
    detections (rows in ``detections``), model, task, model_sha256, engine, engine_version,
    timings_ms (map stage -> ms), worker, created_at, part, written_at

``detections``: one row per box, class or mask; a video's sampled frames give rows too::

    item, frame, t (video only, else null), track_id (null when untracked), rank (the row's
    place in its image or frame: 0 is a classifier's top-1), class_id, class_name, score,
    x1, y1, x2, y2 (pixels), nx1, ny1, nx2, ny2 (divided by width and height),
    mask_counts (uncompressed COCO RLE, column-major, at image size; null without a mask),
    landmarks (x, y pairs flattened), embedding, part

``part`` names the part file a row came from and ``written_at`` when that part was written: the
newest part of an item wins when a redelivered or retried message wrote it twice
(`framefleet.dataset`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from framefleet.core.documents import Document, FrameResult, ImageDocument, VideoDocument
from framefleet.core.results import Detections, rle_encode

TABLES_VERSION = 1
"""Version of both tables' schema; bumped on any incompatible change."""

IMAGES = "images"
DETECTIONS = "detections"
TABLES = (IMAGES, DETECTIONS)

_META = {b"framefleet.tables": str(TABLES_VERSION).encode()}

IMAGES_SCHEMA = pa.schema(
    [
        ("item", pa.string()),
        ("job_id", pa.string()),
        ("source", pa.string()),
        ("kind", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("message", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("frames", pa.int32()),
        ("fps", pa.float32()),
        ("detections", pa.int32()),
        ("model", pa.string()),
        ("task", pa.string()),
        ("model_sha256", pa.string()),
        ("engine", pa.string()),
        ("engine_version", pa.string()),
        ("timings_ms", pa.map_(pa.string(), pa.float32())),
        ("worker", pa.string()),
        ("created_at", pa.timestamp("ms", tz="UTC")),
        ("part", pa.string()),
        ("written_at", pa.timestamp("ms", tz="UTC")),
    ],
    metadata=_META,
)

DETECTIONS_SCHEMA = pa.schema(
    [
        ("item", pa.string()),
        ("frame", pa.int32()),
        ("t", pa.float32()),
        ("track_id", pa.int64()),
        ("rank", pa.int32()),
        ("class_id", pa.int32()),
        ("class_name", pa.string()),
        ("score", pa.float32()),
        ("x1", pa.float32()),
        ("y1", pa.float32()),
        ("x2", pa.float32()),
        ("y2", pa.float32()),
        ("nx1", pa.float32()),
        ("ny1", pa.float32()),
        ("nx2", pa.float32()),
        ("ny2", pa.float32()),
        ("mask_counts", pa.list_(pa.int64())),
        ("landmarks", pa.list_(pa.float32())),
        ("embedding", pa.list_(pa.float32())),
        ("part", pa.string()),
    ],
    metadata=_META,
)

SCHEMAS = {IMAGES: IMAGES_SCHEMA, DETECTIONS: DETECTIONS_SCHEMA}


@dataclass
class Rows:
    """Rows of both tables, gathered item by item, then turned into Arrow tables.

    Example:
        >>> rows = Rows(part="j1-b0000003-9f2c41d0", job_id="j1")
        >>> rows.add_document("a.jpg", document)
        >>> rows.add_failure("b.jpg", "DecodeError", "b.jpg: not an image", "host:42")
        >>> rows.tables()[IMAGES].num_rows
        2
    """

    part: str
    job_id: str = ""
    images: list[dict[str, Any]] = field(default_factory=list)
    detections: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def add_document(
        self, item: str, document: Document, frames: Iterable[FrameResult] = ()
    ) -> None:
        """The rows of ``item``'s result document (``frames``: a video's per-frame results)."""
        doc = document
        before = len(self.detections)
        message = None
        if isinstance(doc, ImageDocument):
            self._add_boxes(item, doc.results, doc.width, doc.height)
            sampled, fps = 1, None
            message = "; ".join(doc.warnings) or None  # damage the decoder read through
        else:
            for line in frames:
                if line.results is not None:
                    self._add_boxes(item, line.results, doc.width, doc.height, line.frame, line.t)
            sampled, fps = doc.summary.sampled_frames, doc.fps
        model = doc.model
        self.images.append(
            {
                "item": item,
                "source": doc.source,
                "kind": doc.kind,
                "status": "done",
                "message": message,
                "width": doc.width,
                "height": doc.height,
                "frames": sampled,
                "fps": fps,
                "detections": len(self.detections) - before,
                "model": model.name,
                "task": model.task,
                "model_sha256": model.sha256,
                "engine": model.engine,
                "engine_version": model.engine_version,
                "timings_ms": list(doc.timings_ms.items()),
                "worker": doc.worker,
                "created_at": _ms(doc.created_at),
            }
        )

    def add_outcome(
        self,
        item: str,
        document: Document | None,
        *,
        error: str = "",
        message: str = "",
        worker: str = "",
        read: Callable[[str], bytes] | None = None,
    ) -> None:
        """The rows of one item's outcome: its result document's (a video's frames read with
        ``read``, its output storage's ``read_bytes``), or a failure's when it has none."""
        if document is None:
            self.add_failure(item, error, message, worker)
        elif isinstance(document, VideoDocument) and read is not None:
            self.add_document(item, document, document.frame_results(read))
        else:
            self.add_document(item, document)

    def add_failure(
        self, item: str, error: str, message: str, worker: str, kind: str = "image"
    ) -> None:
        """The row of an item that failed (no detections)."""
        self.images.append(
            {
                "item": item,
                "kind": kind,
                "status": "failed",
                "error": error,
                "message": message,
                "detections": 0,
                "worker": worker,
            }
        )

    def _add_boxes(
        self,
        item: str,
        found: Detections,
        width: int,
        height: int,
        frame: int | None = None,
        t: float | None = None,
    ) -> None:
        n = len(found)
        if not n:
            return
        scale = np.array([width, height, width, height], np.float32)
        norm = found.xyxy / np.maximum(scale, 1)
        names = found.data.get("class_name")
        embedding = found.data.get("embedding")
        for i in range(n):
            x1, y1, x2, y2 = found.xyxy[i].tolist()
            nx1, ny1, nx2, ny2 = norm[i].tolist()
            self.detections.append(
                {
                    "item": item,
                    "frame": frame,
                    "t": t,
                    "track_id": None if found.tracker_id is None else int(found.tracker_id[i]),
                    "rank": i,
                    "class_id": int(found.class_id[i]),
                    "class_name": None if names is None else str(names[i]),
                    "score": float(found.confidence[i]),
                    "x1": x1,
                    "y1": y1,
                    "x2": x2,
                    "y2": y2,
                    "nx1": nx1,
                    "ny1": ny1,
                    "nx2": nx2,
                    "ny2": ny2,
                    "mask_counts": None
                    if found.mask is None
                    else rle_encode(found.mask[i])["counts"],
                    "landmarks": None
                    if found.landmarks is None
                    else found.landmarks[i].ravel().tolist(),
                    "embedding": None
                    if embedding is None
                    else np.asarray(embedding[i], np.float32).ravel().tolist(),
                }
            )

    def tables(self, written_at: float | None = None) -> dict[str, pa.Table]:
        """Both tables, every row stamped with this part's name and write time."""
        stamp = _ms(time.time() if written_at is None else written_at)
        images = [
            {**row, "job_id": self.job_id, "part": self.part, "written_at": stamp}
            for row in self.images
        ]
        detections = [{**row, "part": self.part} for row in self.detections]
        return {
            IMAGES: pa.Table.from_pylist(images, schema=IMAGES_SCHEMA),
            DETECTIONS: pa.Table.from_pylist(detections, schema=DETECTIONS_SCHEMA),
        }


def _ms(seconds: float) -> int:
    """Epoch seconds as the tables' millisecond timestamps."""
    return round(seconds * 1000)


__all__ = [
    "DETECTIONS",
    "DETECTIONS_SCHEMA",
    "IMAGES",
    "IMAGES_SCHEMA",
    "SCHEMAS",
    "TABLES",
    "TABLES_VERSION",
    "Rows",
]
