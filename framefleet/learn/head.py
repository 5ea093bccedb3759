"""A new classification head on frozen embeddings (scikit-learn), and its layers for export.

Two heads: ``linear`` (multinomial logistic regression, L-BFGS) and ``mlp`` (one hidden ReLU
layer, Adam). Features are standardised first; the scaler is folded into the first layer when
the head is turned into `Dense` layers, so the exported graph needs no extra nodes for it.
An "epoch" of the linear head is a few L-BFGS steps (warm-started), which gives the training
curve its points; the MLP's epochs are real passes (``partial_fit``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from framefleet.core import defaults

HeadKind = Literal["linear", "mlp"]

LBFGS_STEPS_PER_EPOCH = 2
"""L-BFGS iterations per point of the linear head's curve."""

LINEAR_C = 0.05
"""Inverse L2 strength of the linear head: 1280 features and a few dozen images per class
overfit at scikit-learn's default of 1.0 (held-out accuracy of the shapes set: 0.78 at 1.0,
0.80 at 0.1 to 0.01)."""

MLP_HIDDEN = 128
"""Hidden units of the ``mlp`` head."""


@dataclass(frozen=True)
class Dense:
    """``y = x @ weight + bias``, then ReLU unless it is the last layer (softmax there).

    Attributes:
        weight: (in, out) float32.
        bias: (out,) float32.
    """

    weight: npt.NDArray[np.float32]
    bias: npt.NDArray[np.float32]


@dataclass
class History:
    """Per-epoch training figures: the curve that is plotted and saved."""

    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    holdout_accuracy: list[float] = field(default_factory=list)
    holdout_loss: list[float] = field(default_factory=list)

    def add(self, loss: float, train_acc: float, held_acc: float, held_loss: float) -> None:
        """Record one epoch."""
        self.loss.append(float(loss))
        self.train_accuracy.append(float(train_acc))
        self.holdout_accuracy.append(float(held_acc))
        self.holdout_loss.append(float(held_loss))

    def to_json(self) -> dict[str, list[float]]:
        """Lists by name, for metrics.json."""
        return {
            "loss": self.loss,
            "train_accuracy": self.train_accuracy,
            "holdout_accuracy": self.holdout_accuracy,
            "holdout_loss": self.holdout_loss,
        }


@dataclass
class Head:
    """A trained head: the scikit-learn pipeline (the training side of parity checks) and its
    curve."""

    pipeline: Any
    n_classes: int
    history: History

    def predict_proba(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """(N, C) class probabilities of embeddings ``x`` (N, D), all C classes as columns."""
        probs = np.asarray(self.pipeline.predict_proba(x), np.float64)
        full = np.zeros((len(x), self.n_classes))
        full[:, self.pipeline.classes_] = probs
        return full

    def layers(self) -> list[Dense]:
        """The head as dense layers on the raw embedding (scaler folded in), ending in logits
        whose softmax is `predict_proba`.

        Binary heads have one logit z (probability sigmoid(z)); it becomes two logits
        (-z/2, z/2), whose softmax is the same (1 - sigmoid(z), sigmoid(z)).
        """
        scaler, clf = self.pipeline[0], self.pipeline[-1]
        if hasattr(clf, "coefs_"):  # MLPClassifier
            weights = [np.asarray(w, np.float64) for w in clf.coefs_]
            biases = [np.asarray(b, np.float64) for b in clf.intercepts_]
        else:  # LogisticRegression: coef_ is (classes, features)
            weights = [np.asarray(clf.coef_, np.float64).T]
            biases = [np.asarray(clf.intercept_, np.float64)]
        if weights[-1].shape[1] == 1:
            weights[-1] = np.concatenate([-weights[-1] / 2, weights[-1] / 2], axis=1)
            biases[-1] = np.concatenate([-biases[-1] / 2, biases[-1] / 2])
        # (x - mean) / scale @ W + b  ==  x @ (W / scale) + (b - (mean / scale) @ W)
        mean, scale = np.asarray(scaler.mean_), np.asarray(scaler.scale_)
        biases[0] = biases[0] - (mean / scale) @ weights[0]
        weights[0] = weights[0] / scale[:, None]
        return [
            Dense(w.astype(np.float32), b.astype(np.float32))
            for w, b in zip(weights, biases, strict=True)
        ]


def train_head(
    x_train: npt.NDArray[np.float32],
    y_train: npt.NDArray[np.int64],
    x_held: npt.NDArray[np.float32],
    y_held: npt.NDArray[np.int64],
    n_classes: int,
    kind: HeadKind = "linear",
    epochs: int = defaults.HEAD_EPOCHS,
    seed: int = defaults.LEARN_SEED,
    on_epoch: Any = None,
) -> Head:
    """Train a head on embeddings, recording loss and accuracy per epoch.

    Args:
        x_train, y_train: (N, D) embeddings and their class ids.
        x_held, y_held: the held-out items, scored after each epoch.
        n_classes: number of classes (ids are 0..n_classes-1).
        kind: ``linear`` or ``mlp``.
        epochs: points on the curve.
        on_epoch: called with (epoch, History) after each epoch, for progress.

    Example:
        >>> head = train_head(x[train], y[train], x[held], y[held], 3)
        >>> head.history.holdout_accuracy[-1]
        1.0
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train)
    xs_train, xs_held = scaler.transform(x_train), scaler.transform(x_held)
    clf: Any
    if kind == "linear":
        clf = LogisticRegression(
            max_iter=LBFGS_STEPS_PER_EPOCH, warm_start=True, C=LINEAR_C, random_state=seed
        )
    else:
        clf = MLPClassifier(hidden_layer_sizes=(MLP_HIDDEN,), random_state=seed, alpha=1e-3)
    classes = np.arange(n_classes)
    history = History()
    for epoch in range(epochs):
        with warnings.catch_warnings():
            # each epoch stops L-BFGS early on purpose: its ConvergenceWarning is expected
            warnings.simplefilter("ignore")
            if kind == "linear":
                clf.fit(xs_train, y_train)
            else:
                clf.partial_fit(xs_train, y_train, classes=classes)
        p_train = clf.predict_proba(xs_train)
        p_held = clf.predict_proba(xs_held)
        history.add(
            log_loss(y_train, p_train, labels=clf.classes_),
            float(np.mean(clf.classes_[p_train.argmax(1)] == y_train)),
            float(np.mean(clf.classes_[p_held.argmax(1)] == y_held)),
            log_loss(y_held, p_held, labels=clf.classes_),
        )
        if on_epoch is not None:
            on_epoch(epoch + 1, history)
    return Head(Pipeline([("scale", scaler), ("head", clf)]), n_classes, history)


def nearest_centroid_accuracy(
    x_train: npt.NDArray[np.float32],
    y_train: npt.NDArray[np.int64],
    x_held: npt.NDArray[np.float32],
    y_held: npt.NDArray[np.int64],
) -> float:
    """Held-out accuracy of the base network alone: each item gets the class whose mean training
    embedding is nearest (no training). The baseline a new head has to beat."""
    from sklearn.neighbors import NearestCentroid

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "zero standard deviation" of constant features
        model = NearestCentroid().fit(x_train, y_train)
    return float(np.mean(model.predict(x_held) == y_held))
