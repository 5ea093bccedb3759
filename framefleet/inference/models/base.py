"""The model adapter interface: three named stages around an inference engine.

    image ──preprocess──▶ (blob, meta) ──infer──▶ raw outputs by name ──postprocess──▶ Detections

``preprocess`` and ``postprocess`` are pure NumPy (plus cv2 image ops), so they are testable on
synthetic arrays without a network. ``infer`` goes through an `Engine`, so a second engine
(onnxruntime) can stand in for ``cv2.dnn`` without touching the decoders.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from framefleet.core.registry import ModelSpec
from framefleet.core.results import Detections
from framefleet.inference.engines import Blob, CvDnnEngine, Engine, RawOutputs
from framefleet.inference.models.preprocessing import Image, Meta, to_blob

__all__ = ["Adapter", "Blob", "CvDnnEngine", "Engine", "Image", "Meta", "Model", "RawOutputs"]

Model = Callable[[Image], Detections]
"""What downstream code needs of a model: an image in, Detections out."""


class Adapter(ABC):
    """One model family: loads its network and runs the three stages.

    Subclasses implement `postprocess`, and override `preprocess` (default: the registry's
    recipe, `to_blob`), `build_engine` (default: ``cv2.dnn``) and `check_supported` where they
    differ; `infer` and `__call__` come for free. Instances are built once per worker process
    and reused for every image.

    Example:
        >>> adapter = load_adapter(spec, store)          # framefleet.inference.models.load_adapter
        >>> blob, meta = adapter.preprocess(image)
        >>> detections = adapter.postprocess(adapter.infer(blob), meta)
    """

    family: str = ""

    def __init__(self, spec: ModelSpec, engine: Engine, labels: list[str]) -> None:
        self.spec = spec
        self.engine = engine
        self.labels = labels

    @classmethod
    def load(cls, spec: ModelSpec, files: dict[str, Path], labels: list[str]) -> Adapter:
        """Build the adapter from verified local files (role -> path) and class names."""
        return cls(spec, cls.build_engine(spec, files), labels)

    @classmethod
    def check_supported(cls, spec: ModelSpec) -> None:
        """Raise `ModelLoadError` if this OpenCV cannot run ``spec`` at all; called before any
        model file is fetched, so nothing is downloaded for a model that could not load."""
        return None  # every family but Caffe's runs on every supported OpenCV

    @classmethod
    def build_engine(cls, spec: ModelSpec, files: dict[str, Path]) -> Engine:
        """The default engine: ``cv2.dnn`` reading ``files['model']`` (and ``files['config']``)."""
        return CvDnnEngine.from_file(files["model"], files.get("config"))

    def preprocess(self, image: Image) -> tuple[Blob, Meta]:
        """Image -> 1×C×H×W blob and the metadata postprocess needs (the registry's recipe)."""
        return to_blob(image, self.spec.preprocess)

    def infer(self, blob: Blob) -> RawOutputs:
        """Run the engine on ``blob``."""
        return self.engine.forward(blob)

    @abstractmethod
    def postprocess(self, raw: RawOutputs, meta: Meta) -> Detections:
        """Raw outputs -> Detections in image pixels, thresholded and NMS-ed."""

    def label(self, class_id: int) -> str:
        """The class name of ``class_id``, or ``class_<id>`` when the labels do not cover it."""
        if 0 <= class_id < len(self.labels):
            return self.labels[class_id]
        return f"class_{class_id}"

    def __call__(self, image: Image) -> Detections:
        blob, meta = self.preprocess(image)
        return self.postprocess(self.infer(blob), meta)
