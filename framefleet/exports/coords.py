"""Box coordinates in the forms the export formats use, from the tables' pixel ``x1 y1 x2 y2``.

One place for every conversion, so COCO (pixels, top-left and size), YOLO (normalised centre
and size) and Label Studio (percent, top-left and size) cannot drift apart.

    >>> coco_xywh(10, 20, 50, 80)
    [10.0, 20.0, 40.0, 60.0]
    >>> yolo_cxcywh(10, 20, 50, 80, width=100, height=200)
    (0.3, 0.25, 0.4, 0.3)
"""

from __future__ import annotations


def coco_xywh(x1: float, y1: float, x2: float, y2: float) -> list[float]:
    """COCO ``bbox``: top-left corner and size, pixels."""
    return [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]


def yolo_cxcywh(
    x1: float, y1: float, x2: float, y2: float, width: int, height: int
) -> tuple[float, float, float, float]:
    """YOLO label: centre and size, each divided by the image's width or height."""
    return (
        (x1 + x2) / 2 / width,
        (y1 + y2) / 2 / height,
        (x2 - x1) / width,
        (y2 - y1) / height,
    )


def yolo_to_xyxy(
    cx: float, cy: float, w: float, h: float, width: int, height: int
) -> tuple[float, float, float, float]:
    """Inverse of `yolo_cxcywh`: pixels ``x1 y1 x2 y2``."""
    return (
        (cx - w / 2) * width,
        (cy - h / 2) * height,
        (cx + w / 2) * width,
        (cy + h / 2) * height,
    )


def percent_xywh(
    x1: float, y1: float, x2: float, y2: float, width: int, height: int
) -> dict[str, float]:
    """Label Studio rectangle ``value``: top-left corner and size, percent of the image."""
    return {
        "x": 100.0 * x1 / width,
        "y": 100.0 * y1 / height,
        "width": 100.0 * (x2 - x1) / width,
        "height": 100.0 * (y2 - y1) / height,
    }
