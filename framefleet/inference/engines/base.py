"""The engine interface: what runs a network forward, apart from what prepares and reads it.

An engine loads one model file and runs an N×C×H×W blob, returning the outputs by name. The
adapters (`framefleet.inference.models`) make the blobs and decode the outputs, so a second
engine runs every family without touching a decoder.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from framefleet.core import defaults

Blob = npt.NDArray[np.float32]
"""A network input, N×C×H×W float32."""

RawOutputs = dict[str, npt.NDArray[Any]]
"""Network outputs keyed by output name (never by position: OpenCV versions order them
differently)."""

CV_DNN, ONNXRUNTIME = defaults.ENGINES
"""The default engine, and the optional one (``pip install 'framefleet[onnxruntime]'``)."""

ENGINE_NAMES = defaults.ENGINES
"""Engines a registry entry, a worker or a job may ask for."""


class Engine(Protocol):
    """Runs a network forward on a batch of images.

    Attributes:
        name: ``cv2.dnn`` or ``onnxruntime`` (or a family's own, e.g. ``cv2.FaceDetectorYN``).
        version: the library version that runs it, as result documents record it.
        output_names: the outputs `forward` returns.
        max_batch: the largest N `forward` accepts (1 for a file with a fixed batch of one);
            probed when the model is loaded.

    Example:
        >>> engine = open_engine("onnxruntime", Path("yolox_nano_416.onnx"), threads=1)
        >>> engine.forward(np.zeros((1, 3, 416, 416), np.float32))["output"].shape
        (1, 3549, 85)
    """

    name: str
    version: str
    output_names: list[str]
    max_batch: int

    def forward(self, blob: Blob) -> RawOutputs:
        """Outputs of one forward pass of ``blob`` (N ≤ `max_batch`), keyed by output name;
        each output's first axis is N."""
        ...


def probe_batch(engine: Engine, shape: tuple[int, int, int], want: int) -> int:
    """The largest batch up to ``want`` that ``engine`` runs with rows that split per image.

    Runs one random image of ``shape`` (C, H, W) alone, then as the first of ``want``: a file
    exported with a fixed batch of one either refuses the batch, returns outputs whose first axis
    is not ``want``, or mixes images (row 0 differs from the lone run); any of these means one
    image at a time.

    Example:
        >>> probe_batch(engine, (3, 416, 416), 4)
        4
    """
    if want <= 1:
        return 1
    rng = np.random.default_rng(0)
    blob = rng.uniform(0, 255, (want, *shape)).astype(np.float32)
    try:
        alone = engine.forward(blob[:1])
        batch = engine.forward(blob)
    except Exception:  # a fixed-batch file: any refusal means "one at a time"
        return 1
    for name, out in batch.items():
        one = alone[name]
        if out.ndim == 0 or out.shape[0] != want or out.shape[1:] != one.shape[1:]:
            return 1
        scale = float(np.abs(one).max()) or 1.0
        if float(np.abs(out[:1] - one).max()) > 1e-3 * scale:
            return 1
    return want
