"""`OrtEngine`: onnxruntime, an optional engine (``pip install 'framefleet[onnxruntime]'``).

It runs the same ONNX files as ``cv2.dnn``, usually faster on CPU. The package is imported only
when this engine is asked for, so a worker without it runs ``cv2.dnn`` as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from framefleet.core.errors import ConfigError, ModelLoadError
from framefleet.inference.engines.base import ONNXRUNTIME, Blob, RawOutputs

MISSING = (
    "the onnxruntime engine needs the onnxruntime package: install the extra with "
    "pip install 'framefleet[onnxruntime]', or choose --engine cv2.dnn"
)


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ConfigError(MISSING) from exc
    return onnxruntime


def ort_version() -> str | None:
    """The installed onnxruntime version, or None when the extra is not installed."""
    try:
        return str(_onnxruntime().__version__)
    except ConfigError:
        return None


class OrtEngine:
    """`Engine` backed by an ``onnxruntime.InferenceSession`` on the CPU.

    Args:
        session: the session; its first input is fed the blob.
        output_names: the outputs to return (default: all of them).

    Example:
        >>> engine = OrtEngine.from_file(Path("yolox_nano_416.onnx"), threads=1)
        >>> engine.forward(blob)["output"].shape
        (1, 3549, 85)
    """

    name = ONNXRUNTIME

    def __init__(self, session: Any, output_names: Sequence[str] | None = None) -> None:
        self.session = session
        self.version = str(_onnxruntime().__version__)
        self.input_name = str(session.get_inputs()[0].name)
        self.output_names = list(output_names or [o.name for o in session.get_outputs()])
        self.max_batch = 1

    @classmethod
    def from_file(cls, model: Path, threads: int = 1) -> OrtEngine:
        """Open ``model`` (ONNX) with ``threads`` intra-op threads and one inter-op thread.

        Raises:
            ConfigError: onnxruntime is not installed (names the extra to install).
            ModelLoadError: onnxruntime refused the file.
        """
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initialisers are noise here
        try:
            session = ort.InferenceSession(
                str(model), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelLoadError(
                f"onnxruntime {ort.__version__} could not read {model}: "
                f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}"
            ) from exc
        return cls(session)

    def forward(self, blob: Blob) -> RawOutputs:
        outs = self.session.run(self.output_names, {self.input_name: np.ascontiguousarray(blob)})
        return dict(zip(self.output_names, outs, strict=True))
