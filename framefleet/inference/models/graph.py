"""What a model file says about itself, and what a family proposes to make of it.

`read_graph` reads an ONNX file's input, its metadata (Ultralytics writes ``names``, ``imgsz``,
``stride``, ``task``, ``kpt_shape`` and ``end2end`` there) and the shapes of its outputs, taken
from one forward on ``cv2.dnn`` (declared output shapes are often symbolic). Each family's
``recognise`` looks at a `Graph` and returns a `Proposal` (the registry entry it would write) or
None; `framefleet.inference.models.recognise` asks them in turn.

Example:
    >>> graph = read_graph(Path("yolov8n.onnx"))
    >>> graph.outputs, graph.ultralytics["task"]
    ({'output0': (1, 84, 8400)}, 'detect')
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from framefleet.core.errors import ModelLoadError
from framefleet.core.registry import Task

Dim = int | str
"""A declared input dimension: a size, or the name of a dynamic axis."""

DEFAULT_SIZE = 640
"""Input side used for a file whose input size is dynamic and whose metadata gives none."""


@dataclass(frozen=True)
class Graph:
    """An ONNX file's input, outputs and metadata.

    Attributes:
        path: the file.
        input_name: the (first) input's name.
        input_shape: its declared N, C, H, W (names for dynamic axes).
        input_wh: the width and height it was probed at: the declared size, else the metadata's
            ``imgsz``, else `DEFAULT_SIZE`.
        outputs: each output's shape from a forward of one image at ``input_wh``.
        metadata: the file's metadata properties.
        last_ops: each output's producing operator (``Softmax``, ``Sigmoid``, ``Gemm``, ...).
    """

    path: Path
    input_name: str
    input_shape: tuple[Dim, ...]
    input_wh: tuple[int, int]
    outputs: dict[str, tuple[int, ...]]
    metadata: dict[str, str] = field(default_factory=dict)
    last_ops: dict[str, str] = field(default_factory=dict)

    @property
    def dynamic_size(self) -> bool:
        """Whether the input's height and width are left open (any size the network takes)."""
        return not all(isinstance(d, int) and d > 0 for d in self.input_shape[2:])

    @property
    def ultralytics(self) -> dict[str, Any]:
        """The Ultralytics exporter's metadata, parsed (empty for other files)."""
        if "Ultralytics" not in self.metadata.get("author", "") or "task" not in self.metadata:
            return {}
        parsed: dict[str, Any] = {}
        for key, value in self.metadata.items():
            try:
                parsed[key] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                parsed[key] = value
        return parsed

    def names(self) -> list[str] | None:
        """Class names from the metadata (``names``: a dict id -> name), in id order."""
        names = self.ultralytics.get("names")
        if not isinstance(names, dict):
            return None
        return [str(names[i]) for i in sorted(names)]

    def describe(self) -> str:
        """One line: the input and every output with its shape."""
        outs = ", ".join(f"{name} {shape}" for name, shape in self.outputs.items())
        return f"input {self.input_name} {list(self.input_shape)}; outputs {outs}"


@dataclass(frozen=True)
class Proposal:
    """The registry entry a family would write for a file (``models add``).

    Attributes:
        family: the family that recognised the file.
        task: the registry task.
        preprocess: the ``preprocess`` table (input_wh, resize, scale, mean, std, ...).
        postprocess: the ``postprocess`` table (thresholds, top_k).
        labels: class names, when the file names them.
        layout: the entry's ``layout`` table (facts the outputs do not show).
        reason: why the family took the file, for the user.
    """

    family: str
    task: Task
    preprocess: dict[str, Any]
    postprocess: dict[str, Any]
    labels: list[str] | None = None
    layout: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


def read_graph(path: Path, input_wh: tuple[int, int] | None = None) -> Graph:
    """Read ``path``'s input, metadata and output shapes.

    Args:
        path: an ONNX file.
        input_wh: the input width and height to probe at when the file leaves them dynamic
            (default: its metadata's ``imgsz``, else `DEFAULT_SIZE`).

    Raises:
        ModelLoadError: the file is not an ONNX model, has no 4-d image input, or OpenCV cannot
            run it.
    """
    import onnx  # the learn and worker extras carry it; only models add reads graphs

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, ValueError or OSError by version
        raise ModelLoadError(f"{path} is not an ONNX model onnx can read: {exc}") from exc
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if not inputs:
        raise ModelLoadError(f"{path} has no input")
    first = inputs[0]
    shape: tuple[Dim, ...] = tuple(
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in first.type.tensor_type.shape.dim
    )
    if len(shape) != 4:
        raise ModelLoadError(
            f"{path}: input {first.name} has shape {list(shape)}; framefleet feeds images as "
            "N×3×H×W"
        )
    metadata = {p.key: p.value for p in model.metadata_props}
    producers = {out: node.op_type for node in model.graph.node for out in node.output}
    names = [o.name for o in model.graph.output]
    wh = input_wh or _declared_wh(shape) or _imgsz(metadata) or (DEFAULT_SIZE, DEFAULT_SIZE)
    outputs = _probe(path, names, wh)
    return Graph(
        path=path,
        input_name=first.name,
        input_shape=shape,
        input_wh=wh,
        outputs=outputs,
        metadata=metadata,
        last_ops={name: producers.get(name, "") for name in names},
    )


def _declared_wh(shape: tuple[Dim, ...]) -> tuple[int, int] | None:
    h, w = shape[2], shape[3]
    return (w, h) if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0 else None


def _imgsz(metadata: dict[str, str]) -> tuple[int, int] | None:
    try:
        value = ast.literal_eval(metadata.get("imgsz", ""))
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, int):
        return value, value
    if isinstance(value, list | tuple) and len(value) == 2:
        return int(value[1]), int(value[0])  # Ultralytics writes [h, w]
    return None


def _probe(path: Path, names: list[str], wh: tuple[int, int]) -> dict[str, tuple[int, ...]]:
    """Output shapes from one forward of a grey image at ``wh`` on ``cv2.dnn``."""
    try:
        net = cv2.dnn.readNetFromONNX(str(path))
        net.setInput(np.full((1, 3, wh[1], wh[0]), 0.5, np.float32))
        found = net.forward(names)
    except cv2.error as exc:
        raise ModelLoadError(
            f"OpenCV {cv2.__version__} cannot run {path} at {wh[0]}×{wh[1]}: "
            f"{str(exc).strip().splitlines()[-1]}"
        ) from exc
    return {name: tuple(int(d) for d in out.shape) for name, out in zip(names, found, strict=True)}
