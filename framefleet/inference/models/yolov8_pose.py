"""Ultralytics pose estimation (YOLOv8-pose, YOLO11-pose), family ``yolov8-pose``.

Output (1, 4 + C + K·D, N): columns as in ``yolov8`` plus K keypoints of D values each (x, y in
letterboxed input pixels, and with D = 3 a visibility already through its sigmoid). The entry's
``layout.keypoints = [K, D]`` comes from the file's ``kpt_shape``. Keypoints land in
``landmarks`` (N, K, 2) and their visibilities in ``data["keypoint_score"]`` (N, K).
"""

from __future__ import annotations

import numpy as np

from framefleet.core.errors import ModelError
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


class Yolov8PoseAdapter(Adapter):
    """An Ultralytics pose model: person boxes with keypoints.

    Example:
        >>> d = load_adapter(registry.get("my-yolov8n-pose"), store)(image)
        >>> d.landmarks.shape, d.data["keypoint_score"].shape
        ((2, 17, 2), (2, 17))
    """

    family = "yolov8-pose"

    @classmethod
    def recognise(cls, graph: Graph) -> Proposal | None:
        meta, names, shape = graph.ultralytics, graph.names(), one_output(graph, 3)
        kpt = meta.get("kpt_shape")
        if meta.get("task") != "pose" or names is None or shape is None or not kpt:
            return None
        k, d = (int(v) for v in kpt)
        if min(shape[1:]) != 4 + len(names) + k * d:
            return None
        return ultralytics_proposal(graph, cls.family, "pose", {"keypoints": [k, d]})

    def postprocess(self, raw: RawOutputs, meta: Meta) -> Detections:
        k, d = (int(v) for v in self.spec.layout.get("keypoints", (17, 3)))
        pred = columns(pick_output(raw, lambda a: a.ndim == 3, "1×(4+C+K·D)×N")[0])
        n_classes = pred.shape[0] - 4 - k * d
        if n_classes < 1:
            raise ModelError(
                f"{self.spec.name}: output has {pred.shape[0]} rows, too few for 4 box rows, a "
                f"class and {k}×{d} keypoint values; check layout.keypoints in its entry"
            )
        xyxy, scores, class_ids, kept = decode_columns(pred, n_classes, meta, self.spec.postprocess)
        found = to_detections(xyxy, scores, class_ids, image_wh=meta.image_wh, label=self.label)
        points = pred[4 + n_classes :, kept].T.reshape(-1, k, d)
        # clipped to the image, as Ultralytics' predictor gives them
        w, h = meta.image_wh
        xy = meta.to_image(np.ascontiguousarray(points[:, :, :2]))
        landmarks = np.clip(xy, 0, np.array([w, h], np.float32))
        visible = points[:, :, 2] if d == 3 else np.ones(points.shape[:2], np.float32)
        return Detections(
            xyxy=found.xyxy,
            confidence=found.confidence,
            class_id=found.class_id,
            landmarks=landmarks,
            data={**found.data, "keypoint_score": visible.astype(np.float32)},
        )
