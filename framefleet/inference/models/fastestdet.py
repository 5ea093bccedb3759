"""FastestDet (single 22×22 head), family ``fastestdet``.

Output (1, 5 + C, H, W): channel 0 objectness (already sigmoid), 1-2 centre offsets (tanh, plus
the cell index, over the grid size), 3-4 width and height (sigmoid, fractions of the image),
then C class scores. score = obj^0.6 · cls^0.4, as in the reference decoder. The input is a
plain stretch, so fractions map to the image by its own width and height.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from framefleet.core.registry import Postprocess
from framefleet.core.results import Detections
from framefleet.inference.models.base import Adapter, Meta, RawOutputs
from framefleet.inference.models.nms import (
    cxcywh_to_xyxy,
    pick_output,
    select,
    sigmoid,
    to_detections,
)


def decode_fastestdet(
    fmap: npt.NDArray[np.float32], meta: Meta, post: Postprocess
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.intp]]:
    """Decode a (5 + C, H, W) feature map to image-pixel boxes, scores and class ids.

    Returns:
        xyxy (K, 4) in image pixels (not yet clipped), scores (K,), class ids (K,), after the
        score threshold and per-class NMS.
    """
    _, gh, gw = fmap.shape
    rows = fmap.reshape(fmap.shape[0], -1).T  # (H·W, 5 + C), cell index = y·W + x
    cls = rows[:, 5:]
    class_ids = cls.argmax(axis=1)
    cls_score = cls[np.arange(len(cls)), class_ids]
    # clip: tiny negative values from the float export would make the power NaN.
    scores = np.clip(rows[:, 0], 0, 1) ** 0.6 * np.clip(cls_score, 0, 1) ** 0.4
    keep = np.flatnonzero(scores >= post.score_threshold)
    gy, gx = np.divmod(keep, gw)
    cx = (np.tanh(rows[keep, 1]) + gx) / gw
    cy = (np.tanh(rows[keep, 2]) + gy) / gh
    bw, bh = sigmoid(rows[keep, 3]), sigmoid(rows[keep, 4])
    w, h = meta.image_wh
    xyxy = cxcywh_to_xyxy(cx, cy, bw, bh) * np.array([w, h, w, h])
    best = select(xyxy, scores[keep], class_ids[keep], post)
    return xyxy[best].astype(np.float32), scores[keep][best], class_ids[keep][best]


class FastestDetAdapter(Adapter):
    """FastestDet on ``cv2.dnn``: stretch to 352×352, BGR, scale 1/255.

    Example:
        >>> adapter = load_adapter(registry.get("fastestdet"), store)
        >>> "dog" in adapter(image).data["class_name"]
        True
    """

    family = "fastestdet"

    def postprocess(self, raw: RawOutputs, meta: Meta) -> Detections:
        fmap = pick_output(raw, lambda a: a.ndim == 4 and a.shape[1] > 5, "1×(5+C)×H×W")
        xyxy, scores, class_ids = decode_fastestdet(fmap[0], meta, self.spec.postprocess)
        return to_detections(xyxy, scores, class_ids, image_wh=meta.image_wh, label=self.label)
