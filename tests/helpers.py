"""Shared test helpers: paths to the shared models and media, factories, and fakes of raw
network outputs for the decoders (each fake is built from the boxes the decoder must recover).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from framefleet.core.results import Detections

SHARED = Path(
    os.environ.get("FRAMEFLEET_SHARED_DIR") or Path(__file__).resolve().parents[1].parent / "shared"
)
"""The read-only shared folder beside the checkout (FRAMEFLEET_SHARED_DIR overrides)."""
MODEL_DIR = SHARED / "models"
MEDIA_DIR = SHARED / "media"
IMAGES_DIR = MEDIA_DIR / "images"

Box = tuple[float, float, float, float]


def read_image(name: str) -> np.ndarray:
    """A shared image as H×W×3 uint8 BGR."""
    image = cv2.imread(str(IMAGES_DIR / name), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"shared image {IMAGES_DIR / name} is missing or unreadable")
    return image


def make_detections(
    xyxy: Sequence[Box] = (),
    confidence: Sequence[float] | None = None,
    class_id: Sequence[int] | None = None,
    landmarks: Any = None,
    mask: Any = None,
    data: dict[str, Any] | None = None,
) -> Detections:
    """Detections from plain lists; confidence defaults to 0.9 and class_id to 0 per row."""
    n = len(xyxy)
    return Detections(
        xyxy=np.array(xyxy, np.float32).reshape(-1, 4),
        confidence=np.array([0.9] * n if confidence is None else confidence, np.float32),
        class_id=np.array([0] * n if class_id is None else class_id, np.int32),
        landmarks=landmarks,
        mask=mask,
        data={k: np.asarray(v) for k, v in (data or {}).items()},
    )


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two x1 y1 x2 y2 boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def best_match(detections: Detections, name: str, box: Box) -> tuple[int, float]:
    """The row called ``name`` that overlaps ``box`` most, and that IoU ((-1, 0.0) if none)."""
    names = detections.data["class_name"]
    scored = [(iou(b, box), i) for i, (b, n) in enumerate(zip(detections.xyxy, names, strict=True))]
    best = max(((v, i) for v, i in scored if names[i] == name), default=(0.0, -1))
    return best[1], best[0]


# --- fakes of raw network outputs -------------------------------------------------------------


def fake_yolox(
    boxes: Sequence[tuple[Box, float, int, float]],
    input_wh: tuple[int, int] = (416, 416),
    num_classes: int = 80,
    stride: int = 8,
) -> np.ndarray:
    """A (1, A, 5 + C) YOLOX output holding ``boxes`` = [((cx, cy, w, h), obj, class_id, cls)]
    in network pixels, each in the ``stride`` cell that contains its centre."""
    w, h = input_wh
    strides = (8, 16, 32)
    sizes = [(w // s) * (h // s) for s in strides]
    out = np.zeros((1, sum(sizes), 5 + num_classes), np.float32)
    offset = sum(sizes[: strides.index(stride)])
    for (cx, cy, bw, bh), obj, cid, cls in boxes:
        gx, gy = int(cx // stride), int(cy // stride)
        row = out[0, offset + gy * (w // stride) + gx]
        row[:4] = [cx / stride - gx, cy / stride - gy, math.log(bw / stride), math.log(bh / stride)]
        row[4], row[5 + cid] = obj, cls
    return out


def fake_fastestdet(
    boxes: Sequence[tuple[Box, float, int, float]], grid: int = 22, num_classes: int = 80
) -> np.ndarray:
    """A (1, 5 + C, grid, grid) FastestDet output holding ``boxes`` = [((cx, cy, w, h) as
    fractions of the image, obj, class_id, cls)]."""
    out = np.zeros((1, 5 + num_classes, grid, grid), np.float32)
    for (cx, cy, bw, bh), obj, cid, cls in boxes:
        gx, gy = int(cx * grid), int(cy * grid)
        cell = out[0, :, gy, gx]
        cell[0] = obj
        cell[1] = math.atanh(cx * grid - gx)  # the decoder applies tanh
        cell[2] = math.atanh(cy * grid - gy)
        cell[3] = math.log(bw / (1 - bw))  # the decoder applies sigmoid
        cell[4] = math.log(bh / (1 - bh))
        cell[5 + cid] = cls
    return out


def fake_ulfd(faces: Sequence[tuple[Box, float]], anchors: int = 4420) -> dict[str, np.ndarray]:
    """ULFD ``scores`` (1, A, 2) and ``boxes`` (1, A, 4) with ``faces`` = [((x1, y1, x2, y2) as
    fractions, face probability)] in the first rows and background elsewhere."""
    scores = np.tile(np.array([[0.99, 0.01]], np.float32), (anchors, 1))
    boxes = np.tile(np.array([[0.0, 0.0, 0.01, 0.01]], np.float32), (anchors, 1))
    for i, (box, p) in enumerate(faces):
        scores[i], boxes[i] = (1 - p, p), box
    return {"scores": scores[None], "boxes": boxes[None]}


def fake_ssd(rows: Sequence[Sequence[float]]) -> np.ndarray:
    """Caffe DetectionOutput (1, 1, N, 7) from rows [image_id, label, conf, x1, y1, x2, y2]."""
    return np.array(rows, np.float32).reshape(1, 1, -1, 7)


def fake_yunet(faces: Sequence[tuple[Box, float]]) -> dict[str, np.ndarray]:
    """FaceDetectorYN rows [x, y, w, h, 5 × (x, y), score] for ``faces`` = [((x1, y1, x2, y2),
    score)], landmarks at the box's corners and centre."""
    rows = []
    for (x1, y1, x2, y2), score in faces:
        points = [x1, y1, x2, y1, (x1 + x2) / 2, (y1 + y2) / 2, x1, y2, x2, y2]
        rows.append([x1, y1, x2 - x1, y2 - y1, *points, score])
    return {"faces": np.array(rows, np.float32).reshape(-1, 15)}


def fake_logits(class_map: np.ndarray, num_classes: int = 21, margin: float = 4.0) -> np.ndarray:
    """(1, C, H, W) logits whose argmax is ``class_map``: ``margin`` above 0 for the winner."""
    h, w = class_map.shape
    logits = np.zeros((1, num_classes, h, w), np.float32)
    ys, xs = np.mgrid[0:h, 0:w]
    logits[0, class_map, ys, xs] = margin
    return logits


def missing_tool(message: str) -> None:
    """Skip locally, fail in CI (CI set): a skip there would hide a broken setup."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(message)
    pytest.skip(message)
