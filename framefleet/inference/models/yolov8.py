"""Ultralytics detectors (YOLOv8, YOLO11, YOLOv5u, ...), family ``yolov8``.

Output (1, 4 + C, N), one column per anchor point: cx, cy, w, h in letterboxed input pixels,
then C class scores (already sigmoid); no objectness, NMS outside the graph. Segmentation and
pose heads append mask coefficients or keypoints to the same columns, so `decode_columns` serves
``yolov8-seg`` and ``yolov8-pose`` too. Input: Ultralytics' centred letterbox (pad 114), RGB,
0..1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from framefleet.core.registry import Postprocess, Task
from framefleet.core.results import Detections
from framefleet.inference.models.base import Adapter, Meta, RawOutputs
from framefleet.inference.models.graph import Graph, Proposal
from framefleet.inference.models.nms import (
    Indices,
    cxcywh_to_xyxy,
    pick_output,
    select,
    to_detections,
)

Floats = npt.NDArray[np.float32]

CONF = 0.25
IOU = 0.7
MAX_DET = 300
"""Ultralytics' predictor defaults, which `ultralytics_proposal` writes into new entries."""


def columns(pred: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(4 + C + extra, N) as exported; a file transposed to (N, 4 + C + extra) is turned back
    (anchors always outnumber channels)."""
    return pred if pred.shape[0] < pred.shape[1] else pred.T


def decode_columns(
    pred: npt.NDArray[np.float32], n_classes: int, meta: Meta, post: Postprocess
) -> tuple[Floats, Floats, Indices, Indices]:
    """Boxes, scores and classes of the columns that pass the threshold and per-class NMS.

    Args:
        pred: (4 + C + extra, N) columns of one image.
        n_classes: C.
        meta: the letterbox of this image.
        post: thresholds and ``top_k`` (Ultralytics' ``max_det``).

    Returns:
        xyxy (K, 4) in image pixels (not clipped), scores (K,), class ids (K,) and the kept
        columns' indices (K,), best first, for the extra rows (mask coefficients, keypoints).
    """
    cls = pred[4 : 4 + n_classes]
    class_ids = cls.argmax(axis=0)
    scores = cls[class_ids, np.arange(cls.shape[1])]
    rows = np.flatnonzero(scores > post.score_threshold)  # Ultralytics keeps score > conf
    xyxy = cxcywh_to_xyxy(*pred[:4, rows])
    keep = select(xyxy, scores[rows], class_ids[rows], post)
    kept = rows[keep]
    return meta.to_image(xyxy[keep]), scores[kept], class_ids[kept], kept


def ultralytics_proposal(
    graph: Graph, family: str, task: Task, layout: dict[str, Any] | None = None
) -> Proposal:
    """The entry of an Ultralytics export: its letterbox, its classes and its predictor's
    thresholds (conf 0.25, IoU 0.7, at most 300 objects)."""
    w, h = graph.input_wh
    pre: dict[str, Any] = {
        "input_wh": [w, h],
        "resize": "letterbox",
        "center": True,
        "pad_value": 114,
        "scale": 1 / 255,
        "swap_rb": True,
    }
    if graph.dynamic_size:  # Ultralytics' predictor pads such files to its stride only
        pre["stride"] = int(graph.ultralytics.get("stride", 32))
    return Proposal(
        family=family,
        task=task,
        preprocess=pre,
        postprocess={"score_threshold": CONF, "nms_threshold": IOU, "top_k": MAX_DET},
        labels=graph.names(),
        layout=layout or {},
        reason=f"Ultralytics {graph.ultralytics.get('task')} export; {graph.describe()}",
    )


def one_output(graph: Graph, ndim: int) -> tuple[int, ...] | None:
    """The shape of ``graph``'s only output of ``ndim`` dimensions, if there is exactly one."""
    shapes = [s for s in graph.outputs.values() if len(s) == ndim]
    return shapes[0] if len(shapes) == 1 else None


class Yolov8Adapter(Adapter):
    """An Ultralytics detector on ``cv2.dnn`` or onnxruntime.

    Example:
        >>> adapter = load_adapter(registry.get("my-yolo11n"), store)
        >>> adapter(image).data["class_name"]
        array(['dog', 'bicycle', 'truck'], dtype='<U7')
    """

    family = "yolov8"

    @classmethod
    def recognise(cls, graph: Graph) -> Proposal | None:
        meta, names, shape = graph.ultralytics, graph.names(), one_output(graph, 3)
        if meta.get("task") != "detect" or names is None or shape is None:
            return None
        if min(shape[1:]) != 4 + len(names) or len(graph.outputs) != 1:
            return None
        return ultralytics_proposal(graph, cls.family, "detection")

    def postprocess(self, raw: RawOutputs, meta: Meta) -> Detections:
        pred = columns(pick_output(raw, lambda a: a.ndim == 3, "1×(4+C)×N")[0])
        xyxy, scores, class_ids, _ = decode_columns(
            pred, pred.shape[0] - 4, meta, self.spec.postprocess
        )
        return to_detections(xyxy, scores, class_ids, image_wh=meta.image_wh, label=self.label)
