"""Small labelled image sets made deterministically at test time (nothing generated is committed).

How each set is made (also in README, "Test data for learning"):

- `media_crops`: crops of the shared videos, labelled by source and by the shared YOLOX-nano
  detector. ``person`` = YOLOX person boxes in the two person-walking clips, ``bottle`` = YOLOX
  bottle boxes in the bottle-belt clip, ``car`` = YOLOX car boxes in the parking-lot clip. Each
  box gives ``jitter`` crops shifted and scaled by a seeded random generator (a few percent of the
  box), so a short clip gives enough items. Frames are sampled at a fixed stride.
- `shapes`: circles, squares, triangles and crosses drawn with OpenCV on noisy backgrounds, with
  seeded random colours, sizes, positions and rotations; the label is the shape drawn.
- `digits`: scikit-learn's bundled 8×8 handwritten digits (1,797 images, no download), scaled to
  32×32 grey PNGs, the label being the digit.

Every set is an ImageFolder: ``root/<class>/<name>.png``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from helpers import MEDIA_DIR, MODEL_DIR

from framefleet.core.modelstore import ModelStore
from framefleet.core.registry import load_registry
from framefleet.inference.models import load_adapter

VIDEO_DIR = MEDIA_DIR / "video"

# (class, clip, frame stride, YOLOX class name)
CROP_SOURCES = [
    ("person", "person_walk_10s_768x432_mp4v.mp4", 5, "person"),
    ("person", "intel_one-by-one-person-detection.mp4", 40, "person"),
    ("bottle", "intel_bottle-detection.mp4", 24, "bottle"),
    ("car", "parking_lot_person_bicycle_car_480x270_mp4v.mp4", 1, "car"),
]


def media_crops(root: Path, per_class: int = 24, jitter: int = 3, seed: int = 0) -> dict[str, int]:
    """Write detector-labelled crops of the shared videos under ``root``; returns counts."""
    detector = load_adapter(
        load_registry().get("yolox-nano"), ModelStore(MODEL_DIR, download=False)
    )
    rng = np.random.default_rng(seed)
    counts: Counter[str] = Counter()
    for label, clip, stride, wanted in CROP_SOURCES:
        capture = cv2.VideoCapture(str(VIDEO_DIR / clip))
        index = 0
        while counts[label] < per_class:
            ok, frame = capture.read()
            if not ok:
                break
            index += 1
            if (index - 1) % stride:
                continue
            detections = detector(frame)
            for k, box in enumerate(detections.xyxy):
                if detector.label(int(detections.class_id[k])) != wanted:
                    continue
                for j in range(jitter):
                    crop = _jittered_crop(frame, box, rng)
                    if crop is None or counts[label] >= per_class:
                        continue
                    out = root / label / f"{Path(clip).stem}_{index:05d}_{k}_{j}.png"
                    out.parent.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(out), crop)
                    counts[label] += 1
        capture.release()
    return dict(counts)


def _jittered_crop(
    frame: np.ndarray, box: np.ndarray, rng: np.random.Generator
) -> np.ndarray | None:
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    if min(w, h) < 12:
        return None
    dx, dy, s = rng.uniform(-0.08, 0.08), rng.uniform(-0.08, 0.08), rng.uniform(0.95, 1.15)
    cx, cy = (x1 + x2) / 2 + dx * w, (y1 + y2) / 2 + dy * h
    hw, hh = w * s / 2, h * s / 2
    fh, fw = frame.shape[:2]
    a, b = max(0, int(cx - hw)), max(0, int(cy - hh))
    c, d = min(fw, int(cx + hw)), min(fh, int(cy + hh))
    if c - a < 8 or d - b < 8:
        return None
    return frame[b:d, a:c].copy()


SHAPES = ("circle", "square", "triangle", "cross")


def shapes(root: Path, per_class: int = 30, size: int = 96, seed: int = 0) -> dict[str, int]:
    """Write ``per_class`` drawn shapes of each kind under ``root``; returns counts."""
    rng = np.random.default_rng(seed)
    for label in SHAPES:
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            image = cv2.GaussianBlur(image, (7, 7), 0)
            for _ in range(6):  # clutter: random lines, so the shape is not alone on the canvas
                p, q = (tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(2))
                cv2.line(image, p, q, tuple(int(c) for c in rng.integers(0, 256, 3)), 2)
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            r = int(rng.integers(size // 10, size // 5))
            cx, cy = (int(v) for v in rng.integers(r + 2, size - r - 2, 2))
            angle = float(rng.uniform(0, np.pi))
            _draw(image, label, (cx, cy), r, angle, color)
            cv2.imwrite(str(root / label / f"{label}_{i:03d}.png"), image)
    return dict.fromkeys(SHAPES, per_class)


def _draw(
    image: np.ndarray,
    label: str,
    centre: tuple[int, int],
    r: int,
    angle: float,
    color: tuple[int, ...],
) -> None:
    cx, cy = centre
    if label == "circle":
        cv2.circle(image, centre, r, color, -1, cv2.LINE_AA)
        return
    corners = {"square": 4, "triangle": 3, "cross": 4}[label]
    pts = np.array(
        [
            (
                cx + r * np.cos(angle + 2 * np.pi * i / corners),
                cy + r * np.sin(angle + 2 * np.pi * i / corners),
            )
            for i in range(corners)
        ],
        np.int32,
    )
    if label == "cross":
        thickness = max(2, r // 3)
        cv2.line(image, tuple(pts[0]), tuple(pts[2]), color, thickness, cv2.LINE_AA)
        cv2.line(image, tuple(pts[1]), tuple(pts[3]), color, thickness, cv2.LINE_AA)
    else:
        cv2.fillPoly(image, [pts], color, cv2.LINE_AA)


def digits(root: Path, per_class: int = 60, size: int = 32) -> dict[str, int]:
    """Write the first ``per_class`` of each of scikit-learn's bundled digits as PNGs."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    counts: Counter[str] = Counter()
    for image, target in zip(bunch.images, bunch.target, strict=True):
        label = str(int(target))
        if counts[label] >= per_class:
            continue
        grey = (image * (255.0 / 16.0)).astype(np.uint8)
        big = cv2.resize(grey, (size, size), interpolation=cv2.INTER_LINEAR)
        out = root / label / f"digit_{counts[label]:03d}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), big)
        counts[label] += 1
    return dict(counts)
