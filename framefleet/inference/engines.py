"""Engines: what runs a network forward. An engine loads a model file and runs a blob; the
adapters (`framefleet.inference.models`) prepare the blob and read the outputs.

``cv2.dnn`` is the default engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from framefleet.core.errors import ModelLoadError

Blob = npt.NDArray[np.float32]
"""A network input, N×C×H×W float32."""

RawOutputs = dict[str, npt.NDArray[Any]]
"""Network outputs keyed by output name (never by position: OpenCV versions order them
differently)."""

class Engine(Protocol):
    """Runs a network forward. ``cv2.dnn`` is the default; onnxruntime can be a second one."""

    name: str

    def forward(self, blob: Blob) -> RawOutputs:
        """Outputs of one forward pass of ``blob``, keyed by output name."""
        ...


class CvDnnEngine:
    """`Engine` backed by a ``cv2.dnn.Net``."""

    name = "cv2.dnn"

    def __init__(self, net: cv2.dnn.Net, output_names: Sequence[str] | None = None) -> None:
        self.net = net
        self.output_names = list(output_names or net.getUnconnectedOutLayersNames())

    @classmethod
    def from_file(cls, model: Path, config: Path | None = None) -> CvDnnEngine:
        """Read a network file (ONNX, or Caffe/TensorFlow/TFLite where this OpenCV reads them).

        Raises:
            ModelLoadError: OpenCV refused the file; the message says which and why.
        """
        try:
            net = cv2.dnn.readNet(str(model), "" if config is None else str(config))
        except cv2.error as exc:
            raise ModelLoadError(
                f"cv2.dnn (OpenCV {cv2.__version__}) could not read {model}: "
                f"{str(exc).strip().splitlines()[-1]}"
            ) from exc
        if net.empty():
            raise ModelLoadError(
                f"cv2.dnn (OpenCV {cv2.__version__}) read an empty network from {model}"
            )
        return cls(net)

    def forward(self, blob: Blob) -> RawOutputs:
        self.net.setInput(blob)
        outs = self.net.forward(self.output_names)
        return dict(zip(self.output_names, outs, strict=True))
