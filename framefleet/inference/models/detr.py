"""DETR-style detectors (RT-DETR, RF-DETR, DETR), family ``detr``.

A fixed set of Q queries, each a box as normalised cx, cy, w, h and its class scores; no NMS, a
score threshold only. The layouts exporters write, named by the entry's ``layout.scores``:

- ``columns``: one (1, Q, 6) output, box then score then class id (Ultralytics RT-DETR);
- ``probabilities``: one (1, Q, 4 + C) output, box then C class probabilities;
- ``sigmoid``: a (1, Q, 4) boxes output and a (1, Q, C) logits output (RF-DETR's ``dets`` and
  ``labels``);
- ``softmax``: the same with C + 1 logits, the last "no object" (DETR's ``pred_boxes`` and
  ``logits``).

The input is stretched to the network's size, so boxes scale straight to the image.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from framefleet.core.errors import ModelError
from framefleet.core.results import Detections
from framefleet.inference.models.base import Adapter, Meta, RawOutputs
from framefleet.inference.models.graph import Graph, Proposal
from framefleet.inference.models.image_classifier import IMAGENET_MEAN, IMAGENET_STD
from framefleet.inference.models.nms import (
    best_over,
    cxcywh_to_xyxy,
    pick_output,
    sigmoid,
    softmax,
    to_detections,
)
from framefleet.inference.models.yolov8 import CONF, MAX_DET

SCORES = ("columns", "probabilities", "sigmoid", "softmax")


def query_scores(
    raw: RawOutputs, layout: str
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.intp]]:
    """Boxes (Q, 4) normalised cx cy w h, best scores (Q,) and their classes (Q,) of one image.

    Raises:
        ModelError: ``layout`` is not one of `SCORES`, or the outputs do not fit it.
    """
    if layout in ("columns", "probabilities"):
        rows = pick_output(raw, lambda a: a.ndim == 3 and a.shape[2] > 4, "1×Q×(4+…)")[0]
        if layout == "columns":
            return rows[:, :4], rows[:, 4], rows[:, 5].astype(np.intp)
        probs = rows[:, 4:]
    elif layout in ("sigmoid", "softmax"):
        boxes = pick_output(raw, lambda a: a.ndim == 3 and a.shape[2] == 4, "1×Q×4")[0]
        logits = pick_output(raw, lambda a: a.ndim == 3 and a.shape[2] != 4, "1×Q×C")[0]
        # softmax: the last class is DETR's "no object", dropped
        probs = sigmoid(logits) if layout == "sigmoid" else softmax(logits, axis=1)[:, :-1]
        rows = np.concatenate([boxes, probs], axis=1)
    else:
        raise ModelError(f"layout.scores must be one of {SCORES}, got {layout!r}")
    class_ids = probs.argmax(axis=1)
    return rows[:, :4], probs[np.arange(len(probs)), class_ids], class_ids


class DetrAdapter(Adapter):
    """A set-prediction detector: threshold, scale, done.

    Example:
        >>> adapter = load_adapter(registry.get("my-rtdetr"), store)
        >>> adapter(image).data["class_name"]
        array(['dog', 'bicycle'], dtype='<U7')
    """

    family = "detr"
    ordered_outputs = False  # NMS or top-k inside the graph

    @classmethod
    def recognise(cls, graph: Graph) -> Proposal | None:
        meta, names = graph.ultralytics, graph.names()
        shapes = [s for s in graph.outputs.values() if len(s) == 3]
        if len(shapes) != len(graph.outputs):
            return None
        layout: str | None = None
        if meta.get("head") == "RTDETRDecoder" and len(shapes) == 1 and names is not None:
            layout = "columns" if shapes[0][2] == 6 else "probabilities"
        elif len(shapes) == 2 and sorted(s[2] == 4 for s in shapes) == [False, True]:
            layout = "softmax" if "logits" in graph.outputs else "sigmoid"
        if layout is None:
            return None
        w, h = graph.input_wh
        pre: dict[str, Any] = {"input_wh": [w, h], "resize": "stretch", "scale": 1 / 255}
        pre["swap_rb"] = True
        if not meta:  # DETR and RF-DETR train on ImageNet-normalised RGB
            pre |= {"mean": [255 * m for m in IMAGENET_MEAN], "std": list(IMAGENET_STD)}
        return Proposal(
            family=cls.family,
            task="detection",
            preprocess=pre,
            postprocess={"score_threshold": CONF if meta else 0.5, "top_k": MAX_DET},
            labels=names,
            layout={"scores": layout},
            reason=f"DETR-style queries ({layout} scores); {graph.describe()}",
        )

    def postprocess(self, raw: RawOutputs, meta: Meta) -> Detections:
        post = self.spec.postprocess
        cxcywh, scores, class_ids = query_scores(raw, str(self.spec.layout.get("scores", "")))
        keep = best_over(scores, post)
        w, h = meta.image_wh
        xyxy = cxcywh_to_xyxy(*cxcywh[keep].T) * np.array([w, h, w, h], np.float32)
        return to_detections(
            xyxy, scores[keep], class_ids[keep], image_wh=meta.image_wh, label=self.label
        )
