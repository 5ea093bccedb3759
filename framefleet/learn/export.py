"""Export: a registry model's graph cut at its ``embedding`` output, with a new head appended, as
ONE ONNX file that ``cv2.dnn`` loads (edited with the ``onnx`` package).

    input ─▶ … base layers (frozen, or retrained weights swapped in) … ─▶ embedding
                                                                            │
                                    MatMul ─▶ Add [─▶ Relu ─▶ MatMul ─▶ Add] ─▶ Softmax ─▶ output

The base's own classifier branch (ImageNet's 1001 classes) is cut away. Outputs are ``output``
(C probabilities) and ``embedding``, the two the ``classifier`` adapter family reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper, numpy_helper

from framefleet.core.errors import ModelError
from framefleet.learn.head import Dense

EMBEDDING = "embedding"
OUTPUT = "output"


def load_graph(path: Path) -> onnx.ModelProto:
    """Read an ONNX file.

    Raises:
        ModelError: not a readable ONNX file.
    """
    try:
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, OSError...: one message for all
        raise ModelError(f"cannot read ONNX file {path}: {exc}") from exc


def cut_at(model: onnx.ModelProto, outputs: Sequence[str]) -> onnx.ModelProto:
    """A copy of ``model`` whose outputs are the tensors ``outputs``, without the nodes and
    initializers they do not need.

    Written here rather than with ``onnx.utils.Extractor``, which refuses tensors whose shape it
    has not been given; the outputs here get the shapes ONNX shape inference finds (cv2.dnn
    needs them).

    Raises:
        ModelError: an output name is not a tensor of the graph.
    """
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    missing = [name for name in outputs if name not in producer and name not in known]
    if missing:
        raise ModelError(f"cannot cut the graph at {missing}: no such tensor in it")
    keep: set[int] = set()
    stack = list(outputs)
    seen: set[str] = set()
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        node = producer.get(name)
        if node is not None:
            keep.add(id(node))
            stack.extend(node.input)
    inferred = onnx.shape_inference.infer_shapes(model).graph
    typed = {v.name: v for v in [*inferred.output, *inferred.value_info]}
    cut = onnx.ModelProto()
    cut.CopyFrom(model)
    del cut.graph.node[:]
    cut.graph.node.extend(n for n in graph.node if id(n) in keep)
    del cut.graph.output[:]
    cut.graph.output.extend(
        typed[name]
        if name in typed
        else helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        for name in outputs
    )
    _drop_unused_initializers(cut.graph)
    return cut


def replace_tensors(model: onnx.ModelProto, values: Mapping[str, npt.NDArray[np.float32]]) -> None:
    """Give the tensors ``values`` (by name) new constant values, in place.

    A tensor that is an initializer gets new data; one computed by a ``DequantizeLinear`` of
    constants (a QDQ weight) loses that node and becomes a float initializer: retrained weights
    are stored dequantised.

    Raises:
        ModelError: a name is neither.
    """
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    for name, value in values.items():
        array = np.ascontiguousarray(value, np.float32)
        if name in inits:
            inits[name].CopyFrom(numpy_helper.from_array(array, name))
            continue
        producer = next((n for n in graph.node if name in n.output), None)
        if producer is None or producer.op_type != "DequantizeLinear":
            raise ModelError(
                f"tensor {name!r} is neither an initializer nor a dequantised weight of the graph"
            )
        graph.node.remove(producer)
        graph.initializer.append(numpy_helper.from_array(array, name))
    _drop_unused_initializers(graph)


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in node.input}
    for init in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(init)


def with_head(
    base: onnx.ModelProto,
    layers: Sequence[Dense],
    replace: Mapping[str, npt.NDArray[np.float32]] | None = None,
) -> onnx.ModelProto:
    """``base`` cut at ``embedding``, ``replace`` swapped in, ``layers`` appended with a softmax.

    Args:
        base: a graph with an ``embedding`` output of shape (1, D).
        layers: the head, first layer's weight (D, H); ReLU between layers.
        replace: tensors of the base to give new values (retrained weights).

    Returns:
        The model, checked by ``onnx.checker``; outputs ``output`` (1, C) and ``embedding``.

    Raises:
        ModelError: the base has no ``embedding`` output, or the layer shapes do not chain.

    Example:
        >>> model = with_head(load_graph(base_path), head.layers())
        >>> onnx.save(model, "model.onnx")
    """
    names = [o.name for o in base.graph.output]
    if EMBEDDING not in names:
        raise ModelError(f"the base graph has outputs {names}, not {EMBEDDING!r}")
    model = cut_at(base, [EMBEDDING])
    if replace:
        replace_tensors(model, replace)
    graph = model.graph
    width = _dim(graph.output[0])
    current = EMBEDDING
    for i, layer in enumerate(layers):
        if layer.weight.shape[0] != width or layer.bias.shape != (layer.weight.shape[1],):
            raise ModelError(
                f"head layer {i} has weight {layer.weight.shape} and bias {layer.bias.shape}; "
                f"it must take {width} inputs"
            )
        w, b = f"head_{i}_weight", f"head_{i}_bias"
        graph.initializer.extend(
            [numpy_helper.from_array(layer.weight, w), numpy_helper.from_array(layer.bias, b)]
        )
        graph.node.append(helper.make_node("MatMul", [current, w], [f"head_{i}_matmul"]))
        graph.node.append(helper.make_node("Add", [f"head_{i}_matmul", b], [f"head_{i}_logits"]))
        current = f"head_{i}_logits"
        if i < len(layers) - 1:
            graph.node.append(helper.make_node("Relu", [current], [f"head_{i}_relu"]))
            current = f"head_{i}_relu"
        width = layer.weight.shape[1]
    graph.node.append(helper.make_node("Softmax", [current], [OUTPUT], axis=1))
    graph.output.insert(
        0, helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, [1, width])
    )
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"the exported graph is not valid ONNX: {exc}") from exc
    return model


def _dim(value: onnx.ValueInfoProto) -> int:
    return int(value.type.tensor_type.shape.dim[-1].dim_value)


def save(model: onnx.ModelProto, path: Path) -> None:
    """Write ``model`` to ``path`` (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
