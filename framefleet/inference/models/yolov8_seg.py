"""Ultralytics instance segmentation (YOLOv8-seg, YOLO11-seg), family ``yolov8-seg``.

Two outputs: (1, 4 + C + M, N) columns as in ``yolov8`` plus M mask coefficients each, and
(1, M, H/4, W/4) prototype masks. An object's mask is the sigmoid of its coefficients times the
prototypes, brought to image resolution through the letterbox; the pixels above 0.5 inside its
box form it, as Ultralytics' ``retina_masks`` gives.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from framefleet.core.results import Detections
from framefleet.inference.models.base import Adapter, Meta, RawOutputs
from framefleet.inference.models.graph import Graph, Proposal
from framefleet.inference.models.nms import pick_output, to_detections
from framefleet.inference.models.yolov8 import (
    columns,
    decode_columns,
    one_output,
    ultralytics_proposal,
)


def decode_masks(
    coefficients: npt.NDArray[np.float32],
    protos: npt.NDArray[np.float32],
    xyxy: npt.NDArray[np.float32],
    image_wh: tuple[int, int],
) -> npt.NDArray[np.bool_]:
    """Each object's mask at image resolution, zero outside its box.

    Follows Ultralytics' ``retina_masks`` path step for step, so masks agree with its predictor
    to the pixel: the prototype logits are upsampled by the smallest factor (1, 2 or 4) that puts
    the letterbox's padding on whole cells, the padding is cut off, and the rest is resized
    (bilinear) to the image. The second resize is done for each box's own pixels only
    (``warpAffine`` samples the same points ``resize`` would), so a large image with many
    objects never holds a float mask per object.

    Args:
        coefficients: (K, M) mask coefficients of the kept objects.
        protos: (M, h, w) prototype masks over the letterboxed input (a quarter of its size).
        xyxy: (K, 4) boxes in image pixels, clipped.
        image_wh: the image's width and height.

    Returns:
        (K, image_h, image_w) bool masks.
    """
    m, ph, pw = protos.shape
    w, h = image_wh
    masks = np.zeros((len(xyxy), h, w), bool)
    if not len(xyxy):
        return masks
    logits = (coefficients @ protos.reshape(m, -1)).reshape(-1, ph, pw)
    gain = min(4 * ph / h, 4 * pw / w)
    pad = (4 * ph - max(round(h * gain), 1)) | (4 * pw - max(round(w * gain), 1))
    f = 4 // math.gcd(4, pad | pad // 2)
    uh, uw = ph * f, pw * f  # the upsampled grid
    gain = min(uh / h, uw / w)
    top = round((uh - max(round(h * gain), 1)) / 2 - 0.1)
    left = round((uw - max(round(w * gain), 1)) / 2 - 0.1)
    ch, cw = max(round(h * gain), 1), max(round(w * gain), 1)  # the image's part of the grid
    sx, sy = cw / w, ch / h
    for i, (x1, y1, x2, y2) in enumerate(xyxy):
        bx1, by1 = int(np.floor(x1)), int(np.floor(y1))
        bx2, by2 = min(int(np.ceil(x2)), w), min(int(np.ceil(y2)), h)
        if bx2 <= bx1 or by2 <= by1:
            continue
        grid = logits[i]
        if f > 1:
            grid = np.asarray(cv2.resize(grid, (uw, uh), interpolation=cv2.INTER_LINEAR))
        part = np.ascontiguousarray(grid[top : top + ch, left : left + cw])
        # resize's sample point for image pixel x is (x + 0.5) * sx - 0.5 in ``part``
        transform = np.array(
            [[sx, 0, (bx1 + 0.5) * sx - 0.5], [0, sy, (by1 + 0.5) * sy - 0.5]], np.float64
        )
        patch = cv2.warpAffine(
            part,
            transform,
            (bx2 - bx1, by2 - by1),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        # inside the box: pixel x counts when x1 <= x < x2, as Ultralytics' crop_mask has it
        ys = np.arange(by1, by2)[:, None]
        xs = np.arange(bx1, bx2)[None, :]
        masks[i, by1:by2, bx1:bx2] = (patch > 0) & (xs >= x1) & (xs < x2) & (ys >= y1) & (ys < y2)
    return masks


class Yolov8SegAdapter(Adapter):
    """An Ultralytics segmentation model: boxes, classes and one mask per object.

    Example:
        >>> d = load_adapter(registry.get("my-yolov8n-seg"), store)(image)
        >>> d.mask.shape == (len(d), *image.shape[:2])
        True
    """

    family = "yolov8-seg"

    @classmethod
    def recognise(cls, graph: Graph) -> Proposal | None:
        names, shape, protos = graph.names(), one_output(graph, 3), one_output(graph, 4)
        if graph.ultralytics.get("task") != "segment" or names is None:
            return None
        if shape is None or protos is None or min(shape[1:]) != 4 + len(names) + protos[1]:
            return None
        return ultralytics_proposal(graph, cls.family, "segmentation")

    def postprocess(self, raw: RawOutputs, meta: Meta) -> Detections:
        protos = pick_output(raw, lambda a: a.ndim == 4, "1×M×h×w")[0]
        pred = columns(pick_output(raw, lambda a: a.ndim == 3, "1×(4+C+M)×N")[0])
        n_classes = pred.shape[0] - 4 - protos.shape[0]
        xyxy, scores, class_ids, kept = decode_columns(pred, n_classes, meta, self.spec.postprocess)
        found = to_detections(xyxy, scores, class_ids, image_wh=meta.image_wh, label=self.label)
        coefficients = pred[4 + n_classes :, kept].T
        masks = decode_masks(coefficients, protos, found.xyxy, meta.image_wh)
        return Detections(
            xyxy=found.xyxy,
            confidence=found.confidence,
            class_id=found.class_id,
            mask=masks,
            data=found.data,
        )
