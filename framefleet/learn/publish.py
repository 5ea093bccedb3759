"""What every training command ends with: save the ONNX, check its parity through ``cv2.dnn``,
write labels, curve and metrics next to it, and register it.

    OUT/model.onnx            the export (only once parity passed; else model.rejected.onnx)
    OUT/labels.txt            one class name per line, in class-id order
    OUT/training_curve.png    loss and accuracy per epoch
    OUT/metrics.json          accuracies, parity figures, history, registry entry
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx

from framefleet.core.errors import ExportCheckError
from framefleet.core.registry import Preprocess
from framefleet.inference.models.base import Image
from framefleet.learn import export, plots
from framefleet.learn.head import History
from framefleet.learn.parity import ParityReport, check_parity
from framefleet.learn.register import Registered, register

MODEL_FILE = "model.onnx"
REJECTED_FILE = "model.rejected.onnx"


@dataclass(frozen=True)
class Published:
    """What was written and where."""

    out_dir: Path
    model_path: Path
    parity: ParityReport
    registered: Registered | None
    metrics: dict[str, Any]


def publish(
    model: onnx.ModelProto,
    out_dir: Path,
    *,
    classes: list[str],
    preprocess: Preprocess,
    held_images: Callable[[], Iterable[Image]],
    expected: npt.NDArray[np.floating[Any]],
    atol: float,
    history: History,
    metrics: dict[str, Any],
    title: str,
    name: str | None,
    model_dir: Path,
    registry_file: Path | None,
) -> Published:
    """Save, check, document and (when ``name`` and ``registry_file`` are given) register.

    Args:
        held_images: yields the held-out images in the order of ``expected``'s rows.
        expected: (N, C) training-side probabilities of the held-out images.
        metrics: figures to put in metrics.json (parity, history and entry are added).

    Raises:
        ExportCheckError: parity failed; the file is kept as model.rejected.onnx for inspection.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    candidate = out_dir / REJECTED_FILE
    export.save(model, candidate)
    (out_dir / MODEL_FILE).unlink(missing_ok=True)
    try:
        parity = check_parity(candidate, preprocess, held_images(), expected, atol)
    except ExportCheckError:
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        raise
    model_path = candidate.replace(out_dir / MODEL_FILE)
    (out_dir / "labels.txt").write_text("".join(f"{c}\n" for c in classes), encoding="utf-8")
    plots.training_curve(history, out_dir / "training_curve.png", title)
    registered = None
    if name and registry_file is not None:
        registered = register(name, out_dir, model_dir, registry_file, preprocess, classes, title)
    full = {
        **metrics,
        "classes": classes,
        "parity": parity.to_json(),
        "history": history.to_json(),
        "registered": None
        if registered is None
        else {
            "name": registered.name,
            "registry_file": str(registered.registry_file),
            "model_path": str(registered.model_path),
            "sha256": registered.sha256,
        },
    }
    (out_dir / "metrics.json").write_text(json.dumps(full, indent=2))
    return Published(out_dir, model_path, parity, registered, full)
