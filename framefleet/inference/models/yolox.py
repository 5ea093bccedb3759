"""YOLOX (anchor-free, strides 8/16/32), family ``yolox``.

Output (1, A, 5 + C) with A = sum over strides of (H/s)·(W/s) cells, row = [x, y, w, h, obj,
C class scores]: xy = (p + grid_xy)·stride, wh = exp(p)·stride, score = obj·cls (both already
sigmoid in the exported file). Boxes are in letterboxed input pixels; dividing by the letterbox
ratio maps them to the image.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

from framefleet.core.errors import ModelError
from framefleet.core.registry import Postprocess
from framefleet.core.results import Detections
from framefleet.inference.models.base import Adapter, Meta, RawOutputs
from framefleet.inference.models.nms import pick_output, select, to_detections

STRIDES = (8, 16, 32)


@lru_cache(maxsize=8)
def _grid(input_wh: tuple[int, int]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Cell offsets (A, 2) and strides (A, 1) for ``input_wh``, in the network's row order."""
    w, h = input_wh
    cells, strides = [], []
    for s in STRIDES:
        ys, xs = np.mgrid[0 : h // s, 0 : w // s]
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        strides.append(np.full((xs.size, 1), s))
    return np.concatenate(cells).astype(np.float32), np.concatenate(strides).astype(np.float32)


def decode_yolox(
    pred: npt.NDArray[np.float32], meta: Meta, post: Postprocess
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.intp]]:
    """Decode raw rows to image-pixel boxes, scores and class ids, thresholded and NMS-ed.

    Args:
        pred: (A, 5 + C) rows as the network emits them.
        meta: from `to_blob` (letterbox ratio and input size).
        post: thresholds.

    Returns:
        xyxy (K, 4) in image pixels (not yet clipped), scores (K,), class ids (K,).

    Raises:
        ModelError: A does not match the grid of ``meta.input_wh``.
    """
    grid, stride = _grid(meta.input_wh)
    if len(pred) != len(grid):
        raise ModelError(
            f"yolox output has {len(pred)} rows, a {meta.input_wh[0]}×{meta.input_wh[1]} input "
            f"gives {len(grid)} cells at strides {STRIDES}; check preprocess.input_wh"
        )
    cls = pred[:, 5:]
    class_ids = cls.argmax(axis=1)
    scores = pred[:, 4] * cls[np.arange(len(cls)), class_ids]
    # Decode only the rows that can pass the threshold: exp() on all 3549 rows is wasted work.
    rows = np.flatnonzero(scores >= post.score_threshold)
    xy = (pred[rows, :2] + grid[rows]) * stride[rows]
    wh = np.exp(pred[rows, 2:4]) * stride[rows]
    xyxy = (np.concatenate([xy - wh / 2, xy + wh / 2], axis=1) / meta.ratio).astype(np.float32)
    keep = select(xyxy, scores[rows], class_ids[rows], post)
    return xyxy[keep], scores[rows][keep], class_ids[rows][keep]


class YoloxAdapter(Adapter):
    """YOLOX on ``cv2.dnn``: letterbox at top-left, raw 0..255 BGR.

    Example:
        >>> adapter = load_adapter(registry.get("yolox-nano"), store)
        >>> adapter(image).data["class_name"]
        array(['dog', 'bicycle', 'car'], dtype='<U7')
    """

    family = "yolox"

    def postprocess(self, raw: RawOutputs, meta: Meta) -> Detections:
        pred = pick_output(raw, lambda a: a.ndim == 3 and a.shape[2] > 5, "1×A×(5+C)")
        xyxy, scores, class_ids = decode_yolox(pred[0], meta, self.spec.postprocess)
        return to_detections(xyxy, scores, class_ids, image_wh=meta.image_wh, label=self.label)
