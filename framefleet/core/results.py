"""The one result type every model adapter, NMS step, merger and writer uses.

A `Detections` holds N rows. What a row means depends on the task, but the fields do not:

- detection / faces: one row per object, ``xyxy`` is its box in image pixels;
- classification: one row per top-k class, ``xyxy`` is the whole image;
- segmentation: one row per class present, ``xyxy`` bounds its pixels, ``mask[i]`` marks them.

JSON form (schema version `SCHEMA_VERSION`)::

    {"xyxy": [[x1, y1, x2, y2], ...], "confidence": [...], "class_id": [...],
     "landmarks": [[[x, y], ...], ...] | null,
     "mask": [{"size": [h, w], "counts": [...]}, ...] | null,  # COCO RLE, column-major
     "data": {"name": [...], ...},
     "tracker_id": [...] | null}  # video: the object's track across frames (-1: not tracked)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

SCHEMA_VERSION = 1
"""Version of the per-image result JSON; bumped on any incompatible change."""


@dataclass(frozen=True, eq=False)
class Detections:
    """N results of one model on one image.

    Args:
        xyxy: (N, 4) float32 boxes, pixels, x1 y1 x2 y2.
        confidence: (N,) float32 scores in [0, 1].
        class_id: (N,) int32 indices into the model's labels.
        landmarks: optional (N, K, 2) float32 points in pixels (e.g. 5 face landmarks).
        mask: optional (N, H, W) bool masks at image resolution.
        data: extra per-row arrays, each of length N (e.g. ``class_name``).
        tracker_id: optional (N,) int64 track ids given by a tracker (-1: row not tracked).

    Raises:
        ValueError: a field's shape does not match N.

    Example:
        >>> d = Detections(xyxy=np.array([[0, 0, 10, 10]]), confidence=np.array([0.9]),
        ...                class_id=np.array([3]))
        >>> len(d[d.confidence > 0.5])
        1
    """

    xyxy: npt.NDArray[np.float32]
    confidence: npt.NDArray[np.float32]
    class_id: npt.NDArray[np.int32]
    landmarks: npt.NDArray[np.float32] | None = None
    mask: npt.NDArray[np.bool_] | None = None
    data: dict[str, npt.NDArray[Any]] = field(default_factory=dict)
    tracker_id: npt.NDArray[np.int64] | None = None

    def __post_init__(self) -> None:
        # Normalise dtypes once here so every consumer can rely on them.
        xyxy = np.asarray(self.xyxy, dtype=np.float32)
        if xyxy.size == 0:
            xyxy = xyxy.reshape(0, 4)
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(
            self, "confidence", np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        )
        object.__setattr__(self, "class_id", np.asarray(self.class_id, dtype=np.int32).reshape(-1))
        n = len(xyxy)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must be N×4, got shape {xyxy.shape}")
        for name in ("confidence", "class_id"):
            got = getattr(self, name).shape
            if got != (n,):
                raise ValueError(f"{name} must have shape ({n},) to match xyxy, got {got}")
        if self.landmarks is not None:
            lm = np.asarray(self.landmarks, dtype=np.float32)
            if lm.ndim != 3 or lm.shape[0] != n or lm.shape[2] != 2:
                raise ValueError(f"landmarks must be {n}×K×2, got shape {lm.shape}")
            object.__setattr__(self, "landmarks", lm)
        if self.mask is not None:
            mask = np.asarray(self.mask, dtype=bool)
            if mask.ndim != 3 or mask.shape[0] != n:
                raise ValueError(f"mask must be {n}×H×W, got shape {mask.shape}")
            object.__setattr__(self, "mask", mask)
        if self.tracker_id is not None:
            ids = np.asarray(self.tracker_id, dtype=np.int64).reshape(-1)
            if ids.shape != (n,):
                raise ValueError(
                    f"tracker_id must have shape ({n},) to match xyxy, got {ids.shape}"
                )
            object.__setattr__(self, "tracker_id", ids)
        for key, value in self.data.items():
            if len(value) != n:
                raise ValueError(f"data[{key!r}] must have length {n}, got {len(value)}")

    @classmethod
    def empty(cls) -> Detections:
        """No rows."""
        return cls(
            xyxy=np.empty((0, 4), np.float32),
            confidence=np.empty(0, np.float32),
            class_id=np.empty(0, np.int32),
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: int | slice | npt.NDArray[Any] | list[int]) -> Detections:
        """Rows selected by a boolean mask, an index array, a slice or one int."""
        if isinstance(index, int):
            index = [index]
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            class_id=self.class_id[index],
            landmarks=None if self.landmarks is None else self.landmarks[index],
            mask=None if self.mask is None else self.mask[index],
            data={k: np.asarray(v)[index] for k, v in self.data.items()},
            tracker_id=None if self.tracker_id is None else self.tracker_id[index],
        )

    def with_tracker_id(self, tracker_id: npt.NDArray[np.int64] | None) -> Detections:
        """The same rows with ``tracker_id`` set (None removes it)."""
        return Detections(
            xyxy=self.xyxy,
            confidence=self.confidence,
            class_id=self.class_id,
            landmarks=self.landmarks,
            mask=self.mask,
            data=self.data,
            tracker_id=tracker_id,
        )

    @classmethod
    def merge(cls, parts: Iterable[Detections]) -> Detections:
        """Concatenate rows; optional fields survive only when every non-empty part has them."""
        items = [p for p in parts if len(p)]
        if not items:
            return cls.empty()
        if len(items) == 1:
            return items[0]
        keys = set(items[0].data)
        if any(set(p.data) != keys for p in items):
            raise ValueError("cannot merge Detections whose data keys differ")

        def cat(name: str) -> Any:
            values = [getattr(p, name) for p in items]
            if any(v is None for v in values):
                return None
            return np.concatenate(values)

        return cls(
            xyxy=np.concatenate([p.xyxy for p in items]),
            confidence=np.concatenate([p.confidence for p in items]),
            class_id=np.concatenate([p.class_id for p in items]),
            landmarks=cat("landmarks"),
            mask=cat("mask"),
            tracker_id=cat("tracker_id"),
            data={k: np.concatenate([np.asarray(p.data[k]) for p in items]) for k in keys},
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (see the module docstring for the schema)."""
        return {
            "xyxy": np.round(self.xyxy.astype(np.float64), 2).tolist(),
            "confidence": np.round(self.confidence.astype(np.float64), 4).tolist(),
            "class_id": self.class_id.tolist(),
            "landmarks": None
            if self.landmarks is None
            else np.round(self.landmarks.astype(np.float64), 2).tolist(),
            "mask": None if self.mask is None else [rle_encode(m) for m in self.mask],
            "data": {k: np.asarray(v).tolist() for k, v in self.data.items()},
            "tracker_id": None if self.tracker_id is None else self.tracker_id.tolist(),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Detections:
        """Inverse of `to_json` (boxes and scores keep the rounding `to_json` applied)."""
        masks = obj.get("mask")
        landmarks = obj.get("landmarks")
        tracker_id = obj.get("tracker_id")
        return cls(
            xyxy=np.asarray(obj["xyxy"], np.float32).reshape(-1, 4),
            confidence=np.asarray(obj["confidence"], np.float32),
            class_id=np.asarray(obj["class_id"], np.int32),
            landmarks=None if landmarks is None else _points(landmarks),
            mask=np.stack([rle_decode(m) for m in masks]) if masks else None,
            data={k: np.asarray(v) for k, v in obj.get("data", {}).items()},
            tracker_id=None if tracker_id is None else np.asarray(tracker_id, np.int64),
        )


def _points(rows: list[Any]) -> npt.NDArray[np.float32]:
    """(N, K, 2) points from JSON; no rows is ``[]``, which numpy would read as shape (0,)."""
    return np.asarray(rows, np.float32) if rows else np.zeros((0, 0, 2), np.float32)


def rle_encode(mask: npt.NDArray[np.bool_]) -> dict[str, Any]:
    """Uncompressed COCO run-length encoding (column-major, runs start with zeros)."""
    flat = np.asarray(mask, dtype=np.uint8).ravel(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def rle_decode(rle: dict[str, Any]) -> npt.NDArray[np.bool_]:
    """Inverse of `rle_encode`."""
    h, w = rle["size"]
    values = np.zeros(len(rle["counts"]), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, rle["counts"])
    if flat.size != h * w:
        raise ValueError(f"RLE counts sum to {flat.size}, expected {h}×{w}={h * w}")
    return flat.reshape((h, w), order="F")
