"""Ultra-Light-Fast-Generic face detector (RFB-320), family ``ulfd``.

The exported file decodes its SSD priors itself: outputs ``scores`` (1, A, 2) softmax over
[background, face] and ``boxes`` (1, A, 4) as x1 y1 x2 y2 fractions of the input, which the
plain stretch lets us scale by the image size directly.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from framefleet.core.errors import ModelError
from framefleet.core.registry import ModelSpec, Postprocess
from framefleet.core.results import Detections
from framefleet.inference.models.base import Adapter, Engine, Meta, RawOutputs
from framefleet.inference.models.nms import named_output, select, to_detections

FACE = 1
"""Index of the face class in the ``scores`` output (0 is background)."""


def decode_ulfd(
    scores: npt.NDArray[np.float32],
    boxes: npt.NDArray[np.float32],
    meta: Meta,
    post: Postprocess,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Face boxes in image pixels and their scores, thresholded and NMS-ed.

    Args:
        scores: (A, 2) [background, face] probabilities.
        boxes: (A, 4) x1 y1 x2 y2 as fractions of the input.
        meta: image size.
        post: thresholds.
    """
    if len(scores) != len(boxes):
        raise ModelError(f"ulfd has {len(scores)} score rows but {len(boxes)} boxes")
    w, h = meta.image_wh
    face = scores[:, FACE]
    xyxy = boxes * np.array([w, h, w, h], np.float32)
    keep = select(xyxy, face, np.zeros(len(face), np.intp), post)
    return xyxy[keep], face[keep]


class UlfdAdapter(Adapter):
    """ULFD on ``cv2.dnn``: stretch to 320×240, RGB, (x - 127) / 128; one class, ``face``.

    Example:
        >>> adapter = load_adapter(registry.get("ulfd"), store)
        >>> len(adapter(image))
        4
    """

    family = "ulfd"

    def __init__(self, spec: ModelSpec, engine: Engine, labels: list[str]) -> None:
        # The registry gives no labels file for a one-class detector.
        super().__init__(spec, engine, labels or ["face"])

    def postprocess(self, raw: RawOutputs, meta: Meta) -> Detections:
        scores = named_output(raw, "scores").reshape(-1, 2)
        boxes = named_output(raw, "boxes").reshape(-1, 4)
        xyxy, face = decode_ulfd(scores, boxes, meta, self.spec.postprocess)
        return to_detections(
            xyxy, face, np.zeros(len(face), np.int32), image_wh=meta.image_wh, label=self.label
        )
