"""MobileNetV2 ImageNet classifier with an embedding output, family ``mobilenet``.

Outputs are read by name: ``output`` (1, 1001) softmax where index 0 is background, and
``embedding`` (1, 1280) pooled features (for transfer learning). OpenCV 4.13 and 5.0 list the
two in different orders, so the engine asks for them by name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from framefleet.core import defaults
from framefleet.core.errors import ModelLoadError
from framefleet.core.registry import ModelSpec, Postprocess
from framefleet.core.results import Detections
from framefleet.inference.engines import open_engine
from framefleet.inference.models.base import Adapter, Engine, Image, Meta, RawOutputs
from framefleet.inference.models.nms import named_output, to_detections

OUTPUTS = ("output", "embedding")
"""Output names the file must have: class probabilities, pooled features."""


def decode_topk(
    probs: npt.NDArray[np.float32], post: Postprocess
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]:
    """The ``post.top_k`` best classes at or above ``post.score_threshold``, best first.

    Args:
        probs: (C,) class probabilities.
        post: ``top_k`` and ``score_threshold``.

    Returns:
        class ids (K,) and their probabilities (K,).
    """
    order = np.argsort(-probs, kind="stable")[: post.top_k]
    order = order[probs[order] >= post.score_threshold]
    return order, probs[order]


def classes_as_rows(
    probs: npt.NDArray[np.float32],
    meta: Meta,
    post: Postprocess,
    label: Callable[[int], str],
) -> Detections:
    """A classifier's result: one row per top-k class (`decode_topk`), its box the whole image.

    Args:
        probs: (C,) class probabilities of one image.
        meta: the image's size.
        post: ``top_k`` and ``score_threshold``.
        label: class id -> name.
    """
    class_ids, scores = decode_topk(probs, post)
    w, h = meta.image_wh
    whole = np.tile(np.array([0, 0, w, h], np.float32), (len(class_ids), 1))
    return to_detections(whole, scores, class_ids, image_wh=meta.image_wh, label=label)


class MobilenetAdapter(Adapter):
    """MobileNetV2 (``cv2.dnn`` or onnxruntime): one row per top-k class, its box the whole image.

    Example:
        >>> adapter = load_adapter(registry.get("mobilenet-v2"), store)
        >>> adapter(image).data["class_name"][0]
        'macaw'
        >>> adapter.embed(image).shape
        (1280,)
    """

    family = "mobilenet"

    @classmethod
    def build_engine(
        cls,
        spec: ModelSpec,
        files: dict[str, Path],
        engine: str = defaults.DEFAULT_ENGINE,
        threads: int = 1,
    ) -> Engine:
        """An engine that returns ``output`` and ``embedding`` by name.

        Raises:
            ModelLoadError: the engine refused the file, or it lacks one of the two outputs.
        """
        runner = open_engine(engine, files["model"], threads=threads)
        names = set(runner.output_names)
        if not names.issuperset(OUTPUTS):
            raise ModelLoadError(
                f"{files['model']} has outputs {sorted(names)}, the mobilenet family needs "
                f"{list(OUTPUTS)}; re-export it with the embedding output (see _provenance)"
            )
        runner.output_names = list(OUTPUTS)
        return runner

    def postprocess(self, raw: RawOutputs, meta: Meta) -> Detections:
        probs = named_output(raw, "output").reshape(-1)
        return classes_as_rows(probs, meta, self.spec.postprocess, self.label)

    def embed(self, image: Image) -> npt.NDArray[np.float32]:
        """The 1280-d pooled feature vector of ``image`` (not normalised).

        Args:
            image: H×W×3 uint8 BGR image.

        Returns:
            (1280,) float32.

        Example:
            >>> features = adapter.embed(image)
            >>> features.shape
            (1280,)
        """
        blob, _ = self.preprocess(image)
        return named_output(self.infer(blob), "embedding").reshape(-1)


class ClassifierAdapter(MobilenetAdapter):
    """Any ONNX classifier with an ``output`` (C probabilities) and an ``embedding`` output, family
    ``classifier``: what ``framefleet finetune`` and ``framefleet train`` export. Labels are the
    model's own classes, without ImageNet's background row.

    Example:
        >>> adapter = load_adapter(registry.get("my-shapes"), store)
        >>> adapter(image).data["class_name"][0]
        'triangle'
    """

    family = "classifier"


class EmbeddingAdapter(MobilenetAdapter):
    """MobileNetV2 whose result rows carry the image's embedding, family ``embedding``.

    One row (the top-1 class) with ``data["embedding"]`` of shape (1, 1280): a job of this model
    is how ``framefleet finetune`` extracts features on the fleet, with the job's usual progress,
    retries and report, and with no change to the workers.

    Example:
        >>> adapter = load_adapter(registry.get("mobilenet-v2-embed"), store)
        >>> adapter(image).data["embedding"].shape
        (1, 1280)
    """

    family = "embedding"

    def postprocess(self, raw: RawOutputs, meta: Meta) -> Detections:
        top = super().postprocess(raw, meta)[:1]
        embedding = named_output(raw, "embedding").reshape(1, -1)
        return Detections(
            xyxy=top.xyxy,
            confidence=top.confidence,
            class_id=top.class_id,
            data={**top.data, "embedding": embedding[: len(top)]},
        )
