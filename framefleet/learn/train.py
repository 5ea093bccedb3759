"""`framefleet train`: a small CNN from scratch (PyTorch), exported to ONNX for ``cv2.dnn``.

The network is the Keras tutorials' ``Sequential`` of ``Conv2D``, ``MaxPooling2D``, ``Flatten``
and ``Dense``, written with ``torch.nn.Sequential`` (the same layers, one to one). Plain PyTorch
rather than Keras 3 on the torch backend: Keras adds a dependency stack (optree, h5py, rich,
ml-dtypes) and its ONNX export on that backend goes through ``torch.onnx`` anyway; with PyTorch
directly the training side of the parity check is the very module that is exported.

Images go through the registry's preprocessing (`to_blob`), the function the workers use, so
training, the parity check and serving see identical blobs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
import torch
from torch import nn

from framefleet.core import defaults
from framefleet.core.registry import Preprocess
from framefleet.core.settings import Settings
from framefleet.inference.models.preprocessing import to_blob
from framefleet.learn.datasets import LabelledSet, image_folder, split
from framefleet.learn.head import History
from framefleet.learn.publish import Published, publish

Echo = Callable[[str], None]

INPUT_WH = (32, 32)
"""Network input, pixels: digits and drawn shapes keep their shape at this size."""

PREPROCESS = Preprocess(input_wh=INPUT_WH, resize="stretch", scale=1 / 255)
"""How images become the CNN's input: 32×32, BGR, 0..1 (the registry entry gets the same)."""

TORCH_THREADS = 1
"""PyTorch threads while training these small networks."""

BATCH = 32
LEARNING_RATE = 2e-3


def small_cnn(n_classes: int) -> nn.Sequential:
    """The tutorials' small CNN: two Conv2D + MaxPooling2D blocks, Flatten, two Dense layers.

    Keras equivalent::

        Sequential([Conv2D(16, 3, padding="same", activation="relu"), MaxPooling2D(),
                    Conv2D(32, 3, padding="same", activation="relu"), MaxPooling2D(),
                    Flatten(), Dense(64, activation="relu"), Dense(n_classes)])
    """
    side = INPUT_WH[0] // 4
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * side * side, 64),
        nn.ReLU(),
        nn.Linear(64, n_classes),
    )


class Served(nn.Module):
    """What is exported: class probabilities (``output``) and the 64-d penultimate features
    (``embedding``), the two outputs of the ``classifier`` family."""

    def __init__(self, net: nn.Sequential) -> None:
        super().__init__()
        self.features = net[:-1]
        self.logits = net[-1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.features(x)
        return torch.softmax(self.logits(embedding), dim=1), embedding


def blobs(data: LabelledSet, indices: npt.NDArray[np.int64], pre: Preprocess) -> torch.Tensor:
    """(N, 3, H, W) float32 input of the items at ``indices``, through `to_blob`."""
    return torch.from_numpy(np.concatenate([to_blob(im, pre)[0] for im in data.images(indices)]))


def to_onnx(module: nn.Module, pre: Preprocess) -> onnx.ModelProto:
    """Export ``module`` (TorchScript exporter, opset 13: what cv2.dnn reads best), batch 1."""
    dummy = torch.zeros(1, 3, pre.input_wh[1], pre.input_wh[0])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            module,
            (dummy,),
            str(path),
            input_names=["input"],
            output_names=["output", "embedding"],
            opset_version=13,
            dynamo=False,
        )
        return onnx.load(str(path))


@dataclass(frozen=True)
class Trained:
    """The outcome of `train`."""

    holdout_accuracy: float
    published: Published


def fit(
    module: nn.Module,
    parameters: list[nn.Parameter] | list[dict[str, object]],
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_held: torch.Tensor,
    y_held: torch.Tensor,
    epochs: int,
    echo: Echo,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> History:
    """Train ``module`` with Adam and cross-entropy, recording the curve per epoch.

    Args:
        parameters: what the optimiser updates (parameter groups allowed).
        forward: logits of a batch (default ``module`` itself).
    """
    run = forward or module
    optimiser = torch.optim.Adam(parameters, lr=LEARNING_RATE)
    loss_fn = nn.CrossEntropyLoss()
    history = History()
    generator = torch.Generator().manual_seed(defaults.LEARN_SEED)
    for epoch in range(1, epochs + 1):
        module.train()
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), BATCH):
            batch = order[start : start + BATCH]
            optimiser.zero_grad()
            loss = loss_fn(run(x_train[batch]), y_train[batch])
            loss.backward()
            optimiser.step()
        module.eval()
        with torch.no_grad():
            train_logits, held_logits = run(x_train), run(x_held)
            history.add(
                float(loss_fn(train_logits, y_train)),
                float((train_logits.argmax(1) == y_train).float().mean()),
                float((held_logits.argmax(1) == y_held).float().mean()),
                float(loss_fn(held_logits, y_held)),
            )
        echo(
            f"epoch {epoch}/{epochs}: loss {history.loss[-1]:.4f} "
            f"held-out accuracy {history.holdout_accuracy[-1]:.3f}"
        )
    return history


def train(
    settings: Settings,
    data_uri: str,
    out_dir: Path,
    *,
    name: str | None = None,
    epochs: int = defaults.CNN_EPOCHS,
    echo: Echo = print,
) -> Trained:
    """Train the small CNN on the ImageFolder at ``data_uri``; publish it like a fine-tuned one.

    Raises:
        DatasetError: the data set is unusable. ExportCheckError: the export's parity failed.

    Example:
        >>> trained = train(settings, "digits/", Path("out"), name="digits")
        >>> trained.holdout_accuracy
        0.96
    """
    torch.manual_seed(defaults.LEARN_SEED)
    # small convolutions gain nothing from many threads, and oversubscribe a shared machine
    torch.set_num_threads(TORCH_THREADS)
    data = image_folder(data_uri)
    echo(f"{len(data)} images in {len(data.classes)} classes: {', '.join(data.classes)}")
    train_idx, held_idx = split(data, settings.holdout)
    x_train, x_held = blobs(data, train_idx, PREPROCESS), blobs(data, held_idx, PREPROCESS)
    y_train = torch.from_numpy(data.labels[train_idx])
    y_held = torch.from_numpy(data.labels[held_idx])
    net = small_cnn(len(data.classes))
    history = fit(net, list(net.parameters()), x_train, y_train, x_held, y_held, epochs, echo)
    served = Served(net).eval()
    with torch.no_grad():
        expected = served(x_held)[0].numpy()
    accuracy = history.holdout_accuracy[-1]
    published = publish(
        to_onnx(served, PREPROCESS),
        out_dir,
        classes=list(data.classes),
        preprocess=PREPROCESS,
        held_images=lambda: data.images(held_idx),
        expected=expected,
        atol=settings.parity_atol,
        history=history,
        metrics={
            "method": "cnn-from-scratch",
            "data": data.storage.uri,
            "items": len(data),
            "trained": len(train_idx),
            "held_out": len(held_idx),
            "holdout_accuracy": accuracy,
        },
        title=f"{name or out_dir.name}: small CNN from scratch",
        name=name,
        model_dir=settings.model_dir,
        registry_file=settings.added_models_file(),
    )
    echo(f"held-out accuracy {accuracy:.3f}; parity max |Δp| {published.parity.max_abs_diff:.2g}")
    return Trained(accuracy, published)
