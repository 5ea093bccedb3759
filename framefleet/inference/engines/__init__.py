"""Engines: what runs a network forward, chosen by name in one place (`open_engine`).

``cv2.dnn`` is the default; ``onnxruntime`` is an optional extra. Adapters never build an engine
themselves: they ask `open_engine` for the one the configuration names.

Example:
    >>> engine = open_engine("cv2.dnn", Path("yolox_nano_416.onnx"))
    >>> engine.name, engine.max_batch
    ('cv2.dnn', 1)
"""

from __future__ import annotations

from pathlib import Path

from framefleet.core import defaults
from framefleet.core.errors import ConfigError
from framefleet.inference.engines.base import (
    CV_DNN,
    ENGINE_NAMES,
    ONNXRUNTIME,
    Blob,
    Engine,
    RawOutputs,
    probe_batch,
)
from framefleet.inference.engines.cvdnn import CvDnnEngine
from framefleet.inference.engines.ort import OrtEngine, ort_version

__all__ = [
    "CV_DNN",
    "ENGINE_NAMES",
    "ONNXRUNTIME",
    "Blob",
    "CvDnnEngine",
    "Engine",
    "OrtEngine",
    "RawOutputs",
    "choose_engine",
    "open_engine",
    "ort_version",
    "probe_batch",
]


def choose_engine(*names: str) -> str:
    """The first non-empty of ``names`` (most specific first: job, worker, registry entry), else
    the default ``cv2.dnn``.

    Raises:
        ConfigError: the chosen name is not a known engine; the message lists the known ones.

    Example:
        >>> choose_engine("", "onnxruntime", "cv2.dnn")
        'onnxruntime'
    """
    name = next((n for n in names if n), defaults.DEFAULT_ENGINE)
    if name not in ENGINE_NAMES:
        raise ConfigError(f"unknown engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}")
    return name


def open_engine(
    name: str,
    model: Path,
    config: Path | None = None,
    *,
    threads: int = 1,
) -> Engine:
    """Load ``model`` on the engine called ``name``.

    Args:
        name: ``cv2.dnn`` or ``onnxruntime``.
        model: the model file; config: a separate graph file (Caffe), ``cv2.dnn`` only.
        threads: onnxruntime's intra-op threads (OpenCV's are set per process instead).

    Raises:
        ConfigError: unknown engine, onnxruntime not installed, or a config file for onnxruntime.
        ModelLoadError: the engine refused the file.
    """
    choose_engine(name)
    if name == ONNXRUNTIME:
        if config is not None:
            raise ConfigError(
                f"{model}: onnxruntime runs single-file ONNX models only; use --engine cv2.dnn"
            )
        return OrtEngine.from_file(model, threads=threads)
    return CvDnnEngine.from_file(model, config)
