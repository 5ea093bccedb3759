"""PNG plots (matplotlib, headless Agg backend): training curves, confusion matrices and
precision-recall curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from framefleet.learn.head import History


def _figure(width: float, height: float) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")  # files only: never a display
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=(width, height), dpi=100)


def training_curve(history: History, path: Path, title: str) -> Path:
    """Loss (left) and accuracy (right) per epoch, training and held-out.

    Example:
        >>> training_curve(head.history, out / "training_curve.png", "shapes")
    """
    plt, fig = _figure(10, 4)
    epochs = np.arange(1, len(history.loss) + 1)
    left, right = fig.subplots(1, 2)
    left.plot(epochs, history.loss, label="training loss")
    left.plot(epochs, history.holdout_loss, label="held-out loss")
    left.set_xlabel("epoch")
    left.set_ylabel("cross-entropy")
    left.legend()
    right.plot(epochs, history.train_accuracy, label="training accuracy")
    right.plot(epochs, history.holdout_accuracy, label="held-out accuracy")
    right.set_xlabel("epoch")
    right.set_ylabel("accuracy")
    right.set_ylim(0, 1.02)
    right.legend()
    fig.suptitle(title)
    return _save(plt, fig, path)


def confusion_matrix(matrix: npt.NDArray[np.int64], classes: Sequence[str], path: Path) -> Path:
    """Counts of true (rows) against predicted (columns) classes, annotated."""
    from sklearn.metrics import ConfusionMatrixDisplay

    side = max(4.0, 0.6 * len(classes) + 2)
    plt, fig = _figure(side, side)
    ax = fig.subplots()
    ConfusionMatrixDisplay(matrix, display_labels=list(classes)).plot(
        ax=ax, colorbar=False, xticks_rotation=45
    )
    plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
    ax.set_title("confusion matrix")
    return _save(plt, fig, path)


def pr_curves(
    curves: Mapping[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]],
    path: Path,
    title: str = "precision-recall per class",
) -> Path:
    """One precision-recall curve per class: ``curves[name] = (recall, precision)``."""
    plt, fig = _figure(7, 5)
    ax = fig.subplots()
    for name, (recall, precision) in curves.items():
        ax.plot(recall, precision, label=name)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    if curves:
        ax.legend(fontsize="small", loc="lower left")
    return _save(plt, fig, path)


def _save(plt: Any, fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
