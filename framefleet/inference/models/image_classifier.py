"""Any single-output image classifier (torchvision, timm, Ultralytics ``-cls``, Keras exports),
family ``image-classifier``.

Output (1, C): probabilities, or logits when the entry's ``layout.softmax`` is true (``models
add`` sets it unless the graph ends in a Softmax). One row per top-k class, its box the whole
image, as the other classifiers give.
"""

from __future__ import annotations

from framefleet.core.results import Detections
from framefleet.inference.models.base import Adapter, Meta, RawOutputs
from framefleet.inference.models.graph import Graph, Proposal
from framefleet.inference.models.mobilenet import classes_as_rows
from framefleet.inference.models.nms import pick_output, softmax

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
"""torchvision's ImageNet normalisation, RGB, in 0..1 units: the default for files that do not
say how they were trained."""


class ImageClassifierAdapter(Adapter):
    """A classifier with one (1, C) output.

    Example:
        >>> adapter = load_adapter(registry.get("my-resnet18"), store)
        >>> adapter(image).data["class_name"][0]
        'tabby'
    """

    family = "image-classifier"

    @classmethod
    def recognise(cls, graph: Graph) -> Proposal | None:
        if len(graph.outputs) != 1:
            return None
        name, shape = next(iter(graph.outputs.items()))
        if len(shape) != 2 or shape[1] < 2:
            return None
        w, h = graph.input_wh
        pre = {"input_wh": [w, h], "resize": "crop", "scale": 1 / 255, "swap_rb": True}
        post = {"top_k": 5, "score_threshold": 0.0}
        if graph.ultralytics.get("task") == "classify":  # resize + centre crop, 0..1, softmax in
            return Proposal(
                family=cls.family,
                task="classification",
                preprocess=pre,
                postprocess=post,
                labels=graph.names(),
                layout={"softmax": False},
                reason=f"Ultralytics classify export; {graph.describe()}",
            )
        softmax = graph.last_ops.get(name) != "Softmax"
        pre |= {
            "crop_fraction": 0.875,
            "mean": [255 * m for m in IMAGENET_MEAN],
            "std": list(IMAGENET_STD),
        }
        return Proposal(
            family=cls.family,
            task="classification",
            preprocess=pre,
            postprocess=post,
            layout={"softmax": softmax},
            reason=(
                f"one (1, {shape[1]}) output ({'logits' if softmax else 'probabilities'}); "
                "fed as torchvision's ImageNet recipe (resize 256, centre crop 224, RGB, ImageNet "
                f"mean and std): edit its preprocess table if it was trained otherwise; "
                f"{graph.describe()}"
            ),
        )

    def postprocess(self, raw: RawOutputs, meta: Meta) -> Detections:
        scores = pick_output(raw, lambda a: a.ndim == 2, "1×C").reshape(-1)
        if self.spec.layout.get("softmax", False):
            scores = softmax(scores)
        return classes_as_rows(scores, meta, self.spec.postprocess, self.label)
