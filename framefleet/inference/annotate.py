"""Draw `Detections` on an image: boxes with captions, landmarks, masks, classification lists.

One colour per class id from a fixed palette, so a class looks the same on every image and in
every run. Rows whose box is the whole image and that have no mask are classification results;
they are listed as text at the top-left instead of being drawn as a frame around the picture.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from framefleet.core.results import Detections
from framefleet.inference.models.base import Image

Color = tuple[int, int, int]

PALETTE: tuple[Color, ...] = (
    (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207),
    (10, 249, 72), (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0),
    (168, 153, 44), (255, 194, 0), (147, 69, 52), (255, 115, 100), (236, 24, 0),
    (255, 56, 132), (133, 0, 82), (255, 56, 203), (200, 149, 255), (199, 55, 255),
)  # fmt: skip
"""BGR colours, indexed by ``class_id % len(PALETTE)``."""

FONT = cv2.FONT_HERSHEY_SIMPLEX
MASK_ALPHA = 0.45
"""Opacity of mask overlays (0 = invisible, 1 = opaque)."""


def color_of(class_id: int) -> Color:
    """The palette colour of ``class_id`` (BGR)."""
    return PALETTE[class_id % len(PALETTE)]


def annotate(image: Image, detections: Detections, labels: Sequence[str] | None = None) -> Image:
    """A copy of ``image`` with ``detections`` drawn on it; ``image`` is not modified.

    Args:
        image: H×W×3 uint8 BGR image.
        detections: rows to draw, in ``image``'s pixels.
        labels: class names by id, used when ``detections.data`` has no ``class_name``.

    Returns:
        The annotated H×W×3 uint8 BGR image.

    Example:
        >>> out = annotate(image, adapter(image))
        >>> out.shape == image.shape
        True
    """
    out = image.copy()
    h, w = out.shape[:2]
    # Sizes follow the image, so captions stay legible on 4K frames and small on thumbnails.
    scale = max(0.4, min(h, w) / 900)
    thickness = max(1, round(min(h, w) / 400))
    names = _names(detections, labels)
    captions = [f"{n} {c:.2f}" for n, c in zip(names, detections.confidence, strict=True)]
    if detections.mask is not None and len(detections):
        layer = out.copy()
        for mask, cid in zip(detections.mask, detections.class_id, strict=True):
            layer[mask] = color_of(int(cid))
        out = np.asarray(cv2.addWeighted(layer, MASK_ALPHA, out, 1 - MASK_ALPHA, 0), np.uint8)
    listed: list[int] = []
    for i, (box, cid) in enumerate(zip(detections.xyxy, detections.class_id, strict=True)):
        if detections.mask is None and _is_whole_image(box, w, h):
            listed.append(i)
            continue
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        color = color_of(int(cid))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        _caption(out, captions[i], (x1, y1), color, scale)
        if detections.landmarks is not None:
            for lx, ly in detections.landmarks[i]:
                cv2.circle(out, (round(float(lx)), round(float(ly))), thickness + 1, color, -1)
    top = 0
    for i in listed:
        color = color_of(int(detections.class_id[i]))
        top += _caption(out, captions[i], (0, top), color, scale, below=True)
    return out


def _names(detections: Detections, labels: Sequence[str] | None) -> list[str]:
    if "class_name" in detections.data:
        return [str(n) for n in detections.data["class_name"]]
    return [
        labels[c] if labels is not None and 0 <= c < len(labels) else str(c)
        for c in detections.class_id.tolist()
    ]


def _is_whole_image(box: npt.NDArray[np.float32], w: int, h: int) -> bool:
    return bool(np.allclose(box, [0, 0, w, h], atol=1.0))


def _caption(
    out: Image, text: str, xy: tuple[int, int], color: Color, scale: float, below: bool = False
) -> int:
    """Draw ``text`` on a filled ``color`` box at ``xy``; returns the box height.

    The box sits above ``xy`` (on top of a detection box) unless that would leave the image or
    ``below`` is set, in which case it hangs below ``xy``.
    """
    thick = max(1, round(scale * 1.5))
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
    box_h = th + base + 4
    x, y = xy
    top = y if below or y - box_h < 0 else y - box_h
    cv2.rectangle(out, (x, top), (x + tw + 4, top + box_h), color, -1)
    # Dark text on light colours, light text on dark ones (ITU-R BT.601 luma of BGR).
    luma = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
    ink = (0, 0, 0) if luma > 140 else (255, 255, 255)
    cv2.putText(out, text, (x + 2, top + th + 2), FONT, scale, ink, thick, cv2.LINE_AA)
    return box_h
