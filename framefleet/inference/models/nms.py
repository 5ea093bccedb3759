"""Decoding steps every family shares, so all of them pick, threshold, suppress and clip alike.

- `pick_output` / `named_output`: a raw output by shape or by name, never by position (OpenCV
  versions order outputs differently);
- `nms` / `select`: score threshold, per-class NMS (``cv2.dnn.NMSBoxesBatched``), top-k;
- `best_over`: threshold and top-k alone, for graphs that suppressed their own duplicates;
- `cxcywh_to_xyxy`, `sigmoid`, `softmax`: the arithmetic layouts share;
- `to_detections`: clip boxes to the image, attach ``data["class_name"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from framefleet.core.errors import ModelError
from framefleet.core.registry import Postprocess
from framefleet.core.results import Detections

Indices = npt.NDArray[np.intp]


def pick_output(
    raw: dict[str, npt.NDArray[Any]], fits: Callable[[npt.NDArray[Any]], bool], expected: str
) -> npt.NDArray[np.float32]:
    """The one output for which ``fits`` holds, as float32.

    Raises:
        ModelError: no output or several fit; the message lists every output's shape.
    """
    matches = [v for v in raw.values() if fits(v)]
    if len(matches) != 1:
        shapes = ", ".join(f"{k}: {v.shape}" for k, v in raw.items())
        raise ModelError(
            f"expected one output shaped {expected}, got {len(matches)} among {{{shapes}}}; "
            "is the registry entry's family right for this file?"
        )
    return np.asarray(matches[0], np.float32)


def named_output(raw: dict[str, npt.NDArray[Any]], name: str) -> npt.NDArray[np.float32]:
    """The output called ``name``, as float32.

    Raises:
        ModelError: there is no such output; the message lists the ones there are.
    """
    if name not in raw:
        raise ModelError(
            f"expected an output named {name!r}, got {sorted(raw)}; "
            "is the registry entry's family right for this file?"
        )
    return np.asarray(raw[name], np.float32)


def nms(
    xyxy: npt.ArrayLike,
    scores: npt.ArrayLike,
    class_ids: npt.ArrayLike,
    iou_threshold: float,
    top_k: int = 0,
) -> Indices:
    """Per-class non-maximum suppression (``cv2.dnn.NMSBoxesBatched``).

    Args:
        xyxy: (N, 4) boxes, x1 y1 x2 y2 in any consistent unit.
        scores: (N,) scores; higher wins.
        class_ids: (N,) class per box; boxes of different classes never suppress each other.
        iou_threshold: a box overlapping a better one of its class by more than this goes.
        top_k: keep at most this many (0 = all).

    Returns:
        Indices of the kept boxes, best score first.

    Example:
        >>> nms([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10]], [0.9, 0.8, 0.7], [0, 0, 1], 0.5)
        array([0, 2])
    """
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return np.empty(0, np.intp)
    # OpenCV wants x, y, w, h boxes, not corners.
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    kept = cv2.dnn.NMSBoxesBatched(
        xywh.tolist(),
        np.asarray(scores, np.float64).reshape(-1).tolist(),
        np.asarray(class_ids, np.int64).reshape(-1).tolist(),
        # Thresholding by score is select()'s job; -inf keeps every candidate here.
        score_threshold=-np.inf,
        nms_threshold=float(iou_threshold),
        top_k=int(top_k),
    )
    return np.asarray(kept, dtype=np.intp).reshape(-1)


def select(
    xyxy: npt.NDArray[np.floating[Any]],
    scores: npt.NDArray[np.floating[Any]],
    class_ids: npt.NDArray[np.integer[Any]],
    post: Postprocess,
) -> Indices:
    """Rows above ``post.score_threshold`` that survive per-class NMS, at most ``post.top_k``.

    Returns:
        Indices into the inputs, best score first.
    """
    candidates = np.flatnonzero(scores >= post.score_threshold)
    kept = nms(xyxy[candidates], scores[candidates], class_ids[candidates], post.nms_threshold)
    return candidates[kept][: post.top_k]


def best_over(scores: npt.NDArray[np.floating[Any]], post: Postprocess) -> Indices:
    """Rows scoring above ``post.score_threshold``, best first, at most ``post.top_k``: the whole
    decoding of a graph that suppressed its own duplicates (NMS or a set of queries inside)."""
    keep = np.flatnonzero(scores > post.score_threshold)
    return keep[np.argsort(-scores[keep], kind="stable")][: post.top_k]


def cxcywh_to_xyxy(
    cx: npt.NDArray[np.floating[Any]],
    cy: npt.NDArray[np.floating[Any]],
    w: npt.NDArray[np.floating[Any]],
    h: npt.NDArray[np.floating[Any]],
) -> npt.NDArray[np.floating[Any]]:
    """(N, 4) corner boxes x1 y1 x2 y2 from centres and sizes (N,) each, in their unit."""
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def sigmoid(x: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
    """Elementwise logistic function, as float32."""
    return np.asarray(1.0 / (1.0 + np.exp(-x)), np.float32)


def softmax(logits: npt.NDArray[np.floating[Any]], axis: int = -1) -> npt.NDArray[np.float32]:
    """Probabilities from logits along ``axis`` (shifted by the maximum, so large logits do not
    overflow)."""
    e = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return np.asarray(e / e.sum(axis=axis, keepdims=True), np.float32)


def to_detections(
    xyxy: npt.ArrayLike,
    scores: npt.ArrayLike,
    class_ids: npt.ArrayLike,
    *,
    image_wh: tuple[int, int],
    label: Callable[[int], str],
    landmarks: npt.NDArray[np.float32] | None = None,
    mask: npt.NDArray[np.bool_] | None = None,
) -> Detections:
    """Detections with boxes clipped to the image and ``data["class_name"]`` filled.

    Args:
        xyxy: (N, 4) boxes in image pixels.
        scores: (N,) confidences.
        class_ids: (N,) indices into the model's labels.
        image_wh: image width and height; boxes are clipped to [0, w] × [0, h].
        label: class id -> name (usually ``Adapter.label``).
        landmarks: optional (N, K, 2) points, pixels (not clipped: a landmark may lie outside).
        mask: optional (N, H, W) masks at image resolution.
    """
    w, h = image_wh
    raw = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
    boxes = np.clip(raw, 0, np.array([w, h, w, h], np.float32))
    ids = np.asarray(class_ids, dtype=np.int32).reshape(-1)
    return Detections(
        xyxy=boxes,
        confidence=np.asarray(scores, np.float32),
        class_id=ids,
        landmarks=landmarks,
        mask=mask,
        data={"class_name": np.array([label(int(c)) for c in ids], dtype=np.str_)},
    )
