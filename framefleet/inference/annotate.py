"""Draw `Detections` on an image: small one-method annotators, composed by the model's task.

Each annotator draws one thing (masks, boxes, landmarks, captions, a class list) and
`annotators_for` picks them by the registry task, never by guessing from box geometry:

    detection       boxes, then captions
    faces           boxes, landmarks, then captions
    segmentation    translucent masks, boxes, then captions
    classification  the top classes listed at the top-left (no frame around the picture)

One colour per class id from a fixed palette, so a class looks the same on every image and in
every run. Line width and text size follow the image size (`Style.for_image`). Captions never
cover each other: each takes the first free place of above the box, inside its top, below it,
inside its bottom, and is otherwise stacked below the last caption in its way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from framefleet.core.results import Detections
from framefleet.inference.models.base import Image

Color = tuple[int, int, int]
Rect = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels, x2/y2 exclusive

PALETTE: tuple[Color, ...] = (
    (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207),
    (10, 249, 72), (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0),
    (168, 153, 44), (255, 194, 0), (147, 69, 52), (255, 115, 100), (236, 24, 0),
    (255, 56, 132), (133, 0, 82), (255, 56, 203), (200, 149, 255), (199, 55, 255),
)  # fmt: skip
"""BGR colours; `color_of` maps class ids onto them."""

PALETTE_STRIDE = 7
"""Step through the palette between consecutive class ids (coprime with its 20 colours)."""

FONT = cv2.FONT_HERSHEY_SIMPLEX
MASK_ALPHA = 0.45
"""Opacity of mask overlays (0 = invisible, 1 = opaque)."""


def color_of(class_id: int) -> Color:
    """The palette colour of ``class_id`` (BGR).

    Ids are spread over the palette by a stride coprime with its length, so neighbouring ids
    (COCO's horse 17, sheep 18, cow 19) get far-apart colours, and every colour is still used.
    """
    return PALETTE[(class_id * PALETTE_STRIDE) % len(PALETTE)]


def ink_on(color: Color) -> Color:
    """Black text on light colours, white on dark ones (ITU-R BT.601 luma of BGR)."""
    luma = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
    return (0, 0, 0) if luma > 140 else (255, 255, 255)


@dataclass(frozen=True)
class Style:
    """Sizes for one image, so lines and captions read the same on a thumbnail and a 4K frame.

    Attributes:
        line: box line width, pixels (at least 2: a 1-pixel pastel box is hard to see).
        font_scale: OpenCV font scale of captions. text: stroke width of caption text, pixels.
    """

    line: int
    font_scale: float
    text: int

    @classmethod
    def for_image(cls, height: int, width: int) -> Style:
        """The style for an image of ``height`` × ``width`` pixels."""
        side = min(height, width)
        font_scale = min(3.0, max(0.4, side / 800))
        return cls(
            line=max(2, round(side / 300)),
            font_scale=font_scale,
            text=max(1, round(font_scale * 1.6)),
        )


@dataclass(frozen=True)
class Scene:
    """What every annotator gets: the image to draw on (in place), the rows, and how to draw."""

    image: Image
    detections: Detections
    captions: list[str]
    style: Style

    @classmethod
    def of(cls, image: Image, detections: Detections, labels: Sequence[str] | None = None) -> Scene:
        """A scene drawing on ``image`` itself: captions "name score" ("name #track score" for
        tracked rows), the image's style."""
        names = _names(detections, labels)
        if detections.tracker_id is not None:  # video: the track, so an object reads the same
            tracks = detections.tracker_id.tolist()
            names = [f"{n} #{t}" if t >= 0 else n for n, t in zip(names, tracks, strict=True)]
        captions = [f"{n} {c:.2f}" for n, c in zip(names, detections.confidence, strict=True)]
        return cls(image, detections, captions, Style.for_image(*image.shape[:2]))


class Annotator(Protocol):
    """One thing drawn on a scene; `annotate` composes them."""

    def draw(self, scene: Scene) -> None:
        """Draw on ``scene.image`` in place."""


class MaskAnnotator:
    """Masks as a translucent overlay in the class colour."""

    def draw(self, scene: Scene) -> None:
        d = scene.detections
        if d.mask is None or not len(d):
            return
        layer = scene.image.copy()
        for mask, cid in zip(d.mask, d.class_id, strict=True):
            layer[mask] = color_of(int(cid))
        cv2.addWeighted(layer, MASK_ALPHA, scene.image, 1 - MASK_ALPHA, 0, dst=scene.image)


class BoxAnnotator:
    """Box outlines in the class colour."""

    def draw(self, scene: Scene) -> None:
        for box, cid in zip(scene.detections.xyxy, scene.detections.class_id, strict=True):
            x1, y1, x2, y2 = _ints(box)
            cv2.rectangle(scene.image, (x1, y1), (x2, y2), color_of(int(cid)), scene.style.line)


class LandmarkAnnotator:
    """Landmarks (faces: eyes, nose, mouth corners) as filled dots."""

    def draw(self, scene: Scene) -> None:
        d = scene.detections
        if d.landmarks is None:
            return
        radius = scene.style.line + 1
        for points, cid in zip(d.landmarks, d.class_id, strict=True):
            for lx, ly in points:
                center = (round(float(lx)), round(float(ly)))
                cv2.circle(scene.image, center, radius, color_of(int(cid)), -1)


COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip
"""Limbs between COCO's 17 person keypoints (nose, eyes, ears, shoulders, elbows, wrists, hips,
knees, ankles), as pose models trained on COCO give them."""

KEYPOINT_VISIBLE = 0.5
"""Keypoints whose visibility score is below this are not drawn (Ultralytics' own cut-off)."""


class KeypointAnnotator:
    """Pose keypoints as dots, joined by COCO's skeleton when there are 17 of them; points the
    model thinks hidden (visibility under `KEYPOINT_VISIBLE`) are left out."""

    def draw(self, scene: Scene) -> None:
        d = scene.detections
        if d.landmarks is None or not len(d):
            return
        scores = d.data.get("keypoint_score")
        radius = scene.style.line + 1
        for i, points in enumerate(d.landmarks):
            color = color_of(int(d.class_id[i]))
            shown = np.ones(len(points), bool) if scores is None else scores[i] >= KEYPOINT_VISIBLE
            xy = [(round(float(x)), round(float(y))) for x, y in points]
            if len(points) == 17:
                for a, b in COCO_SKELETON:
                    if shown[a] and shown[b]:
                        cv2.line(scene.image, xy[a], xy[b], color, scene.style.line, cv2.LINE_AA)
            for point, visible in zip(xy, shown, strict=True):
                if visible:
                    cv2.circle(scene.image, point, radius, color, -1)


class LabelAnnotator:
    """A caption per box (name and score) on a filled class-colour tag; tags never overlap.

    Rows are placed by descending confidence, so the best detection gets the best place.
    """

    def layout(self, scene: Scene) -> list[Rect]:
        """The tag rectangle of each row (x1, y1, x2, y2; exclusive ends), in row order."""
        d = scene.detections
        h, w = scene.image.shape[:2]
        rects: dict[int, Rect] = {}
        for i in np.argsort(-d.confidence, kind="stable").tolist():
            size = _tag_size(scene.captions[i], scene.style)
            rects[i] = _place(_ints(d.xyxy[i]), size, list(rects.values()), w, h)
        return [rects[i] for i in range(len(d))]

    def draw(self, scene: Scene) -> None:
        for i, rect in enumerate(self.layout(scene)):
            color = color_of(int(scene.detections.class_id[i]))
            _tag(scene.image, scene.captions[i], rect, color, scene.style)


class ClassListAnnotator:
    """Classification: the top classes listed at the top-left, best first."""

    def draw(self, scene: Scene) -> None:
        top = 0
        for i in np.argsort(-scene.detections.confidence, kind="stable").tolist():
            tw, th = _tag_size(scene.captions[i], scene.style)
            color = color_of(int(scene.detections.class_id[i]))
            _tag(scene.image, scene.captions[i], (0, top, tw, top + th), color, scene.style)
            top += th


_BY_TASK: dict[str, tuple[Annotator, ...]] = {
    "detection": (BoxAnnotator(), LabelAnnotator()),
    "faces": (BoxAnnotator(), LandmarkAnnotator(), LabelAnnotator()),
    "segmentation": (MaskAnnotator(), BoxAnnotator(), LabelAnnotator()),
    "classification": (ClassListAnnotator(),),
    "pose": (BoxAnnotator(), KeypointAnnotator(), LabelAnnotator()),
}


def annotators_for(task: str) -> tuple[Annotator, ...]:
    """The annotators of a registry task (detection, faces, segmentation, classification, pose)."""
    return _BY_TASK.get(task, _BY_TASK["detection"])


def annotate(
    image: Image,
    detections: Detections,
    labels: Sequence[str] | None = None,
    task: str = "detection",
) -> Image:
    """A copy of ``image`` with ``detections`` drawn on it the way ``task`` calls for.

    Args:
        image: H×W×3 uint8 BGR image; not modified.
        detections: rows to draw, in ``image``'s pixels.
        labels: class names by id, used when ``detections.data`` has no ``class_name``.
        task: the model's registry task; it picks the annotators (`annotators_for`).

    Returns:
        The annotated H×W×3 uint8 BGR image.

    Example:
        >>> out = annotate(image, model(image), task=model.spec.task)
        >>> out.shape == image.shape
        True
    """
    scene = Scene.of(image.copy(), detections, labels)
    for annotator in annotators_for(task):
        annotator.draw(scene)
    return scene.image


def _names(detections: Detections, labels: Sequence[str] | None) -> list[str]:
    if "class_name" in detections.data:
        return [str(n) for n in detections.data["class_name"]]
    return [
        labels[c] if labels is not None and 0 <= c < len(labels) else str(c)
        for c in detections.class_id.tolist()
    ]


def _ints(box: npt.NDArray[np.float32]) -> Rect:
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    return x1, y1, x2, y2


def _tag_size(text: str, style: Style) -> tuple[int, int]:
    (tw, th), base = cv2.getTextSize(text, FONT, style.font_scale, style.text)
    pad = max(2, style.text + 1)
    return tw + 2 * pad, th + base + 2 * pad


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _place(box: Rect, size: tuple[int, int], placed: list[Rect], w: int, h: int) -> Rect:
    """Where the tag of ``box`` goes: the first free candidate, else stacked below the tags in
    its way (above them when the image ends first)."""
    tw, th = size
    x = min(max(0, box[0]), max(0, w - tw))

    def at(top: int) -> Rect:
        top = min(max(0, top), max(0, h - th))
        return x, top, x + tw, top + th

    # above the box, inside its top, below it, inside its bottom
    candidates = [at(box[1] - th), at(box[1]), at(box[3]), at(box[3] - th)]
    for rect in candidates:
        if not any(_overlaps(rect, other) for other in placed):
            return rect
    for down in (True, False):
        stacked = _stack(candidates[0], placed, th, h, down)
        if stacked is not None:
            return stacked
    return candidates[0]  # no free place in the whole column: overlapping beats vanishing


def _stack(rect: Rect, placed: list[Rect], th: int, h: int, down: bool) -> Rect | None:
    """Move ``rect`` past the tags it overlaps, down (or up) until it is free; None if it would
    leave the image."""
    while blockers := [o for o in placed if _overlaps(rect, o)]:
        top = max(o[3] for o in blockers) if down else min(o[1] for o in blockers) - th
        if top < 0 or top + th > h:
            return None
        rect = (rect[0], top, rect[2], top + th)
    return rect


def _tag(image: Image, text: str, rect: Rect, color: Color, style: Style) -> None:
    x1, y1, x2, y2 = rect
    cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), color, -1)
    th = cv2.getTextSize(text, FONT, style.font_scale, style.text)[0][1]
    pad = max(2, style.text + 1)
    origin = (x1 + pad, y1 + pad + th)
    cv2.putText(image, text, origin, FONT, style.font_scale, ink_on(color), style.text, cv2.LINE_AA)
