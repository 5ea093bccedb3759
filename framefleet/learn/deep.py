"""Transfer learning, deep method: the last blocks of the base network are retrained too.

Their weights come from the shared ONNX file itself, converted to PyTorch by hand: the graph's
tail (from the input of the first unfrozen block to ``embedding``) is a chain of seven ONNX ops
(Conv, Clip, Add, Identity, GlobalAveragePool, Flatten and the DequantizeLinear of each QDQ
weight), so `OnnxTail` runs those nodes in order with the dequantised weights as trainable
``nn.Parameter`` s. Why by hand and not onnx2torch (on PyPI, not
tried here): the tail needs only these ops, a hand conversion keeps every retrained weight a plain
float parameter that is written straight back into the graph, needs no further dependency, and
is checked against ``cv2.dnn`` (the converted tail gives the file's own embedding). Any
other op in the tail is refused with its name.

    image ─▶ frozen front (cv2.dnn, the shared file cut at the tail's input)
          ─▶ OnnxTail (trainable) ─▶ embedding ─▶ Linear head ─▶ softmax

The front's features are computed once per image through ``cv2.dnn``, as the served model
computes them. The export is the shared graph with the tail's weights replaced by the trained,
dequantised ones and the head appended (`framefleet.learn.export.with_head`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn
from torch.nn import functional

from framefleet.core import defaults
from framefleet.core.errors import ConfigError, DatasetError, ModelError
from framefleet.core.modelstore import ModelStore
from framefleet.core.settings import Settings
from framefleet.inference.engines import CvDnnEngine
from framefleet.inference.models.preprocessing import to_blob
from framefleet.learn import export
from framefleet.learn.datasets import LabelledSet, image_folder, split
from framefleet.learn.head import Dense, nearest_centroid_accuracy
from framefleet.learn.publish import Published, publish
from framefleet.learn.register import readable
from framefleet.learn.train import LEARNING_RATE, TORCH_THREADS, fit

Echo = Callable[[str], None]

BLOCKS = ("Conv_1", "expanded_conv_16", "expanded_conv_15", "expanded_conv_14")
"""MobileNetV2's last blocks, last first: ``--unfreeze N`` retrains the first N."""

TAIL_LR_SCALE = 0.1
"""The unfrozen blocks learn at a tenth of the head's rate: they start from good weights."""

SUPPORTED = {"Conv", "Clip", "Add", "Identity", "GlobalAveragePool", "Flatten"}


def dequantize(
    node: onnx.NodeProto, values: dict[str, npt.NDArray[Any]]
) -> npt.NDArray[np.float32]:
    """``(q - zero_point) * scale`` of a DequantizeLinear whose inputs are constants (per tensor
    or per ``axis``)."""
    q = values[node.input[0]].astype(np.float32)
    scale = values[node.input[1]].astype(np.float32)
    zero = values[node.input[2]].astype(np.float32) if len(node.input) > 2 else np.float32(0)
    if scale.ndim == 1 and scale.size > 1:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * q.ndim
        shape[axis] = scale.size
        scale, zero = scale.reshape(shape), np.asarray(zero).reshape(shape)
    return ((q - zero) * scale).astype(np.float32)


def cut_tensor(model: onnx.ModelProto, unfreeze: int) -> str:
    """The input tensor of the earliest unfrozen block.

    Raises:
        ConfigError: ``unfreeze`` is out of range, or the graph has no such block.
    """
    if not 1 <= unfreeze <= len(BLOCKS):
        raise ConfigError(f"--unfreeze must be 1 to {len(BLOCKS)}, got {unfreeze}")
    marker = f"MobilenetV2_{BLOCKS[unfreeze - 1]}_"
    for node in model.graph.node:
        if node.op_type == "Conv" and any(marker in name for name in node.input[1:]):
            return str(node.input[0])
    raise ConfigError(f"the base graph has no block {BLOCKS[unfreeze - 1]!r} to unfreeze")


class OnnxTail(nn.Module):
    """The ONNX nodes from ``cut`` to ``embedding``, run in graph order with trainable weights.

    Attributes:
        weights: Conv weight and bias tensor names -> parameter (dequantised float32).

    Raises:
        ModelError: an op other than `SUPPORTED` lies in the tail.
    """

    def __init__(self, model: onnx.ModelProto, cut: str, output: str = export.EMBEDDING) -> None:
        super().__init__()
        graph = model.graph
        constants: dict[str, npt.NDArray[Any]] = {
            t.name: numpy_helper.to_array(t) for t in graph.initializer
        }
        producer = {out: node for node in graph.node for out in node.output}
        for node in graph.node:  # fold the QDQ weights to float constants
            if node.op_type == "DequantizeLinear" and all(i in constants for i in node.input):
                constants[node.output[0]] = dequantize(node, constants)
        needed: list[onnx.NodeProto] = []
        seen: set[str] = set()

        def visit(tensor: str) -> None:
            if tensor == cut or tensor in constants or tensor in seen:
                return
            seen.add(tensor)
            node = producer.get(tensor)
            if node is None:
                raise ModelError(
                    f"tensor {tensor!r} between {cut!r} and {output!r} has no producer"
                )
            for name in node.input:
                visit(name)
            needed.append(node)

        visit(output)
        unsupported = sorted({n.op_type for n in needed} - SUPPORTED)
        if unsupported:
            raise ModelError(f"the tail from {cut!r} has ops {unsupported} this converter lacks")
        self.cut, self.output, self.nodes = cut, output, needed
        self.params = nn.ParameterDict()
        self.names: dict[str, str] = {}  # ONNX tensor name -> parameter key
        self.fixed: dict[str, torch.Tensor] = {}
        for node in needed:
            for i, name in enumerate(node.input):
                if name not in constants:
                    continue
                if node.op_type == "Conv" and i > 0:
                    key = f"p{len(self.names)}"
                    self.names[name] = key
                    self.params[key] = nn.Parameter(torch.from_numpy(constants[name].copy()))
                else:
                    self.fixed[name] = torch.from_numpy(np.asarray(constants[name]).copy())

    def tensor(self, name: str, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """The value of ONNX tensor ``name``: a trainable weight, a constant, or computed."""
        if name in self.names:
            weight: torch.Tensor = self.params[self.names[name]]
            return weight
        if name in self.fixed:
            return self.fixed[name]
        return values[name]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {self.cut: x}
        for node in self.nodes:
            ins = [self.tensor(name, values) for name in node.input]
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            values[node.output[0]] = _run(node.op_type, ins, attrs)
        return values[self.output]

    def trained(self) -> dict[str, npt.NDArray[np.float32]]:
        """Tensor name -> trained value, for `export.replace_tensors`."""
        return {name: self.params[key].detach().numpy() for name, key in self.names.items()}


def _run(op: str, ins: Sequence[torch.Tensor], attrs: dict[str, Any]) -> torch.Tensor:
    if op == "Conv":
        pads = attrs.get("pads", [0, 0, 0, 0])
        if pads[:2] != pads[2:]:
            raise ModelError(f"asymmetric Conv padding {pads} is not supported")
        return functional.conv2d(
            ins[0],
            ins[1],
            ins[2] if len(ins) > 2 else None,
            stride=tuple(attrs.get("strides", [1, 1])),
            padding=tuple(pads[:2]),
            dilation=tuple(attrs.get("dilations", [1, 1])),
            groups=int(attrs.get("group", 1)),
        )
    if op == "Clip":
        return torch.clamp(ins[0], float(ins[1]), float(ins[2]))
    if op == "Add":
        return ins[0] + ins[1]
    if op == "GlobalAveragePool":
        return ins[0].mean(dim=(2, 3), keepdim=True)
    if op == "Flatten":
        return torch.flatten(ins[0], start_dim=int(attrs.get("axis", 1)))
    return ins[0]  # Identity


def front_features(
    model: onnx.ModelProto, cut: str, data: LabelledSet, settings: Settings, base: str
) -> npt.NDArray[np.float32]:
    """(N, C, H, W) output of the frozen front for every item, through ``cv2.dnn``."""
    spec = readable(settings).registry().get(base)
    front = export.cut_at(model, [cut])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "front.onnx"
        export.save(front, path)
        engine = CvDnnEngine(CvDnnEngine.from_file(path).net, [cut])
        rows = [
            engine.forward(to_blob(image, spec.preprocess)[0])[cut]
            for image in data.images(np.arange(len(data)))
        ]
    return np.concatenate(rows).astype(np.float32)


@dataclass(frozen=True)
class DeepFinetuned:
    """The outcome: accuracies on the held-out items and what was published."""

    baseline_accuracy: float
    holdout_accuracy: float
    published: Published


def finetune_deep(
    settings: Settings,
    data_uri: str,
    base: str,
    out_dir: Path,
    *,
    name: str | None = None,
    unfreeze: int = 2,
    epochs: int = defaults.DEEP_EPOCHS,
    echo: Echo = print,
) -> DeepFinetuned:
    """Retrain the last ``unfreeze`` blocks of ``base`` and a new head; publish one ONNX.

    Raises:
        DatasetError: the data set is unusable. ModelError: the base's tail cannot be converted.
        ExportCheckError: the export's parity failed.

    Example:
        >>> result = finetune_deep(settings, "labelled/", "mobilenet-v2", Path("deep"),
        ...                        name="shapes-deep", unfreeze=2)
    """
    torch.manual_seed(defaults.LEARN_SEED)
    torch.set_num_threads(TORCH_THREADS)
    reading = readable(settings)
    spec = reading.registry().get(base)
    graph = export.load_graph(ModelStore(settings.model_dir).path(spec.files["model"]))
    cut = cut_tensor(graph, unfreeze)
    tail = OnnxTail(graph, cut)
    data = image_folder(data_uri)
    if len(data) < 2 * len(data.classes):
        raise DatasetError(f"{len(data)} images are too few for {len(data.classes)} classes")
    echo(
        f"{len(data)} images, {len(data.classes)} classes; unfreezing {BLOCKS[:unfreeze]} "
        f"from {cut!r} ({len(tail.names)} weight tensors, dequantised)"
    )
    train_idx, held_idx = split(data, settings.holdout)
    features = torch.from_numpy(front_features(graph, cut, data, reading, base))
    echo(f"front features {tuple(features.shape[1:])} for {len(data)} images through cv2.dnn")
    with torch.no_grad():
        start = tail(features).numpy()
    baseline = nearest_centroid_accuracy(
        start[train_idx], data.labels[train_idx], start[held_idx], data.labels[held_idx]
    )
    head = nn.Linear(start.shape[1], len(data.classes))
    model = nn.Sequential(tail, head)
    groups: list[dict[str, object]] = [
        {"params": list(tail.parameters()), "lr": LEARNING_RATE * TAIL_LR_SCALE},
        {"params": list(head.parameters())},
    ]
    history = fit(
        model,
        groups,
        features[train_idx],
        torch.from_numpy(data.labels[train_idx]),
        features[held_idx],
        torch.from_numpy(data.labels[held_idx]),
        epochs,
        echo,
    )
    model.eval()
    with torch.no_grad():
        expected = torch.softmax(model(features[held_idx]), dim=1).numpy()
    layer = Dense(head.weight.detach().numpy().T.copy(), head.bias.detach().numpy().copy())
    accuracy = history.holdout_accuracy[-1]
    published = publish(
        export.with_head(graph, [layer], replace=tail.trained()),
        out_dir,
        classes=list(data.classes),
        preprocess=spec.preprocess,
        held_images=lambda: data.images(held_idx),
        expected=expected,
        atol=settings.parity_atol,
        history=history,
        metrics={
            "method": f"deep-unfreeze-{unfreeze}",
            "base": base,
            "cut": cut,
            "unfrozen_blocks": list(BLOCKS[:unfreeze]),
            "data": data.storage.uri,
            "items": len(data),
            "trained": len(train_idx),
            "held_out": len(held_idx),
            "baseline_accuracy": baseline,
            "holdout_accuracy": accuracy,
        },
        title=f"{name or out_dir.name}: last {unfreeze} blocks of {base} + head",
        name=name,
        model_dir=settings.model_dir,
        registry_file=settings.added_models_file(),
    )
    echo(
        f"held-out accuracy {accuracy:.3f} (baseline {baseline:.3f}); parity max |Δp| "
        f"{published.parity.max_abs_diff:.2g}"
    )
    return DeepFinetuned(baseline, accuracy, published)
