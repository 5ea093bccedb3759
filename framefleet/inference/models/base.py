"""The model adapter interface: three named stages around an engine.

    images ──preprocess──▶ (blob, meta) each ──engine, N at a time──▶ raw outputs by name,
    split by row ──postprocess──▶ Detections each

``preprocess`` and ``postprocess`` are pure NumPy (plus cv2 image ops), per image, so they are
testable on synthetic arrays without a network. The forward goes through an `Engine` chosen by
configuration (``cv2.dnn`` or ``onnxruntime``), so the decoders never know which one ran; batch is
the unit the engine sees, and `infer_batch` stacks blobs and splits the outputs back by row.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from framefleet.core import defaults
from framefleet.core.registry import ModelSpec
from framefleet.core.results import Detections
from framefleet.inference.engines import (
    Blob,
    CvDnnEngine,
    Engine,
    RawOutputs,
    open_engine,
    probe_batch,
)
from framefleet.inference.models.graph import Graph, Proposal
from framefleet.inference.models.preprocessing import Image, Meta, to_blob

__all__ = ["Adapter", "Blob", "CvDnnEngine", "Engine", "Image", "Meta", "Model", "RawOutputs"]

Model = Callable[[Image], Detections]
"""What downstream code needs of a model: an image in, Detections out."""


class Adapter(ABC):
    """One model family: its preprocessing and decoding around an engine.

    Subclasses implement `postprocess`, and override `preprocess` (default: the registry's
    recipe, `to_blob`), `build_engine` (default: `open_engine` on ``files['model']``) and
    `check_supported` where they differ; `infer`, `infer_batch`, `detect_batch` and `__call__`
    come for free. Instances are built once per worker process and reused for every image.

    Attributes:
        engines: the engines this family runs on; a family with its own runner (YuNet's
            ``cv2.FaceDetectorYN``) lists only that one.

    Example:
        >>> adapter = load_adapter(spec, store, engine="onnxruntime")
        >>> blob, meta = adapter.preprocess(image)
        >>> detections = adapter.postprocess(adapter.infer(blob), meta)
        >>> adapter.detect_batch([image, image])[1] == detections
    """

    family: str = ""
    engines: tuple[str, ...] = defaults.ENGINES
    ordered_outputs: bool = True
    """False where the graph picks and sorts its own rows (NMS or top-k inside it): engines may
    order near-ties differently, so engine parity compares the decoded detections only."""

    def __init__(self, spec: ModelSpec, engine: Engine, labels: list[str]) -> None:
        self.spec = spec
        self.engine = engine
        self.labels = labels

    @classmethod
    def load(
        cls,
        spec: ModelSpec,
        files: dict[str, Path],
        labels: list[str],
        engine: str = defaults.DEFAULT_ENGINE,
        threads: int = 1,
        batch: int = 1,
    ) -> Adapter:
        """Build the adapter from verified local files (role -> path) and class names.

        Args:
            engine: which engine runs the network (one of `engines`).
            threads: onnxruntime's threads per session (OpenCV's are per process).
            batch: the most images one forward may take; probed, so a file with a fixed batch
                of one runs one at a time.
        """
        adapter = cls(spec, cls.build_engine(spec, files, engine, threads), labels)
        adapter.engine.max_batch = adapter.probe_batch(batch)
        return adapter

    @classmethod
    def recognise(cls, graph: Graph) -> Proposal | None:
        """The registry entry this family would write for ``graph``, or None if the file is not
        one of its layouts (``framefleet models add`` asks every family in turn)."""
        return None

    @classmethod
    def check_supported(cls, spec: ModelSpec) -> None:
        """Raise `ModelLoadError` if this OpenCV cannot run ``spec`` at all; called before any
        model file is fetched, so nothing is downloaded for a model that could not load."""
        return None  # every family but Caffe's runs on every supported OpenCV

    @classmethod
    def build_engine(
        cls,
        spec: ModelSpec,
        files: dict[str, Path],
        engine: str = defaults.DEFAULT_ENGINE,
        threads: int = 1,
    ) -> Engine:
        """The engine called ``engine`` reading ``files['model']`` (and ``files['config']``)."""
        return open_engine(engine, files["model"], files.get("config"), threads=threads)

    def probe_batch(self, want: int) -> int:
        """The batch the engine runs for this model, up to ``want`` (1 for images kept at their
        own size, which cannot stack)."""
        pre = self.spec.preprocess
        if want <= 1 or pre.resize == "none":
            return 1
        w, h = pre.input_wh
        return probe_batch(self.engine, (3, h, w), want)

    def preprocess(self, image: Image) -> tuple[Blob, Meta]:
        """Image -> 1×C×H×W blob and the metadata postprocess needs (the registry's recipe)."""
        return to_blob(image, self.spec.preprocess)

    def infer(self, blob: Blob) -> RawOutputs:
        """Run the engine on ``blob`` (N ≤ ``engine.max_batch`` images)."""
        return self.engine.forward(blob)

    def infer_batch(self, blobs: Sequence[Blob]) -> list[RawOutputs]:
        """The outputs of each 1×C×H×W blob, running up to ``engine.max_batch`` at a time.

        Consecutive blobs of one shape are stacked into one forward; each output is split back
        by row, so every image gets outputs shaped as if it had run alone.
        """
        step = max(1, self.engine.max_batch)
        results: list[RawOutputs] = []
        i = 0
        while i < len(blobs):
            n = 1
            while n < step and i + n < len(blobs) and blobs[i + n].shape == blobs[i].shape:
                n += 1
            if n == 1:
                results.append(self.infer(blobs[i]))
            else:
                raw = self.infer(np.concatenate(blobs[i : i + n]))
                results.extend({k: v[j : j + 1] for k, v in raw.items()} for j in range(n))
            i += n
        return results

    @abstractmethod
    def postprocess(self, raw: RawOutputs, meta: Meta) -> Detections:
        """Raw outputs of one image -> Detections in image pixels, thresholded and NMS-ed."""

    def detect_batch(self, images: Sequence[Image]) -> list[Detections]:
        """`Detections` of each image, with batched forwards where the engine takes them."""
        prepared = [self.preprocess(image) for image in images]
        raws = self.infer_batch([blob for blob, _ in prepared])
        return [self.postprocess(raw, meta) for raw, (_, meta) in zip(raws, prepared, strict=True)]

    def label(self, class_id: int) -> str:
        """The class name of ``class_id``, or ``class_<id>`` when the labels do not cover it."""
        if 0 <= class_id < len(self.labels):
            return self.labels[class_id]
        return f"class_{class_id}"

    def __call__(self, image: Image) -> Detections:
        blob, meta = self.preprocess(image)
        return self.postprocess(self.infer(blob), meta)
