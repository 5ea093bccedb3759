"""Detectors with NMS inside the graph (YOLOv10-style end-to-end heads, Ultralytics ``nms=True``
exports), family ``yolo-e2e``.

Output (1, K, 6): x1, y1, x2, y2 in letterboxed input pixels, score, class id; rows already
suppressed and sorted by the graph, padded with zero scores. Decoding is a threshold and the
letterbox undone.
"""

from __future__ import annotations

import numpy as np

from framefleet.core.results import Detections
from framefleet.inference.models.base import Adapter, Meta, RawOutputs
from framefleet.inference.models.graph import Graph, Proposal
from framefleet.inference.models.nms import best_over, pick_output, to_detections
from framefleet.inference.models.yolov8 import one_output, ultralytics_proposal


class YoloE2eAdapter(Adapter):
    """A detector that suppresses its own duplicates.

    Example:
        >>> adapter = load_adapter(registry.get("my-yolov10n"), store)
        >>> adapter(image).data["class_name"]
        array(['dog', 'bicycle'], dtype='<U7')
    """

    family = "yolo-e2e"
    ordered_outputs = False  # NMS or top-k inside the graph

    @classmethod
    def recognise(cls, graph: Graph) -> Proposal | None:
        meta, names, shape = graph.ultralytics, graph.names(), one_output(graph, 3)
        end2end = meta.get("end2end") is True or (meta.get("args") or {}).get("nms") is True
        if meta.get("task") != "detect" or names is None or shape is None or not end2end:
            return None
        if shape[2] != 6 or len(graph.outputs) != 1:
            return None
        return ultralytics_proposal(graph, cls.family, "detection")

    def postprocess(self, raw: RawOutputs, meta: Meta) -> Detections:
        rows = pick_output(raw, lambda a: a.ndim == 3 and a.shape[2] == 6, "1×K×6")[0]
        rows = rows[best_over(rows[:, 4], self.spec.postprocess)]
        return to_detections(
            meta.to_image(rows[:, :4]),
            rows[:, 4],
            rows[:, 5].astype(np.int32),
            image_wh=meta.image_wh,
            label=self.label,
        )
