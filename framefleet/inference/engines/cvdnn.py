"""`CvDnnEngine`: the default engine, a ``cv2.dnn.Net``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2

from framefleet.core.errors import ModelLoadError
from framefleet.inference.engines.base import CV_DNN, Blob, RawOutputs


class CvDnnEngine:
    """`Engine` backed by a ``cv2.dnn.Net``.

    OpenCV's thread count is per process (``cv2.setNumThreads``), set once by whoever owns the
    process (a worker's runtime, `framefleet run`), not per engine.

    Example:
        >>> engine = CvDnnEngine.from_file(Path("yolox_nano_416.onnx"))
        >>> sorted(engine.forward(blob))
        ['output']
    """

    name = CV_DNN
    version = cv2.__version__

    def __init__(self, net: cv2.dnn.Net, output_names: Sequence[str] | None = None) -> None:
        self.net = net
        self.output_names = list(output_names or net.getUnconnectedOutLayersNames())
        self.max_batch = 1

    @classmethod
    def from_file(cls, model: Path, config: Path | None = None) -> CvDnnEngine:
        """Read a network file (ONNX, or Caffe/TensorFlow/TFLite where this OpenCV reads them).

        Args:
            model: the weights (or the whole ONNX file).
            config: a separate graph file (Caffe's prototxt), if any.

        Raises:
            ModelLoadError: OpenCV refused the file.
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
