"""Transfer learning, default method: a new head on a registry model's frozen embedding.

    ImageFolder ─▶ embeddings (cv2.dnn: on the fleet as a job, or in-process for small sets)
               ─▶ stratified split ─▶ nearest-centroid baseline │ new head (scikit-learn)
               ─▶ base + head as one ONNX ─▶ parity through cv2.dnn ─▶ registered

The deeper method (last blocks unfrozen, PyTorch) is `framefleet.learn.deep`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framefleet.core import defaults
from framefleet.core.errors import DatasetError
from framefleet.core.modelstore import ModelStore
from framefleet.core.settings import Settings
from framefleet.learn import export
from framefleet.learn.datasets import LabelledSet, image_folder, split
from framefleet.learn.features import Embeddings, embed_locally, embed_on_fleet
from framefleet.learn.head import HeadKind, nearest_centroid_accuracy, train_head
from framefleet.learn.publish import Published, publish
from framefleet.learn.register import readable

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Finetuned:
    """The outcome: accuracies on the held-out items and what was published."""

    baseline_accuracy: float
    holdout_accuracy: float
    published: Published


def extract(
    data: LabelledSet,
    settings: Settings,
    base: str,
    out_dir: Path,
    fleet: bool | None,
    work_uri: str | None,
    echo: Echo,
) -> Embeddings:
    """Embeddings of ``data``: on the fleet when asked (or when the set is larger than
    ``settings.local_max_items``), else in-process."""
    use_fleet = fleet if fleet is not None else len(data) > settings.local_max_items
    if use_fleet:
        return embed_on_fleet(data, settings, base, work_uri or str(out_dir / "features"), echo)
    step = max(1, len(data) // 10)

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            echo(f"embedding {done}/{total} images in-process ({base})")

    return embed_locally(data, settings, base, progress)


def finetune(
    settings: Settings,
    data_uri: str,
    base: str,
    out_dir: Path,
    *,
    name: str | None = None,
    head: HeadKind = "linear",
    epochs: int = defaults.HEAD_EPOCHS,
    fleet: bool | None = None,
    work_uri: str | None = None,
    echo: Echo = print,
) -> Finetuned:
    """Train a new head for ``base`` on the ImageFolder at ``data_uri`` and publish base + head.

    Args:
        settings: model directory, registry file (where ``name`` is registered), holdout share,
            parity tolerance, in-process limit.
        data_uri: the labelled images (folder or s3:// prefix, one sub-folder per class).
        base: registry model with an ``embedding`` output (mobilenet-v2).
        out_dir: where model.onnx, labels.txt, training_curve.png and metrics.json go.
        name: register under this name (in ``settings.added_models_file()``).
        fleet: True to extract features on the fleet, False in-process, None by size.

    Raises:
        DatasetError: the data set is unusable, or too many of its images failed.
        ExportCheckError: the export's parity check failed.

    Example:
        >>> result = finetune(settings, "s3://photos/labelled/", "mobilenet-v2", Path("out"),
        ...                   name="my-classes")
        >>> result.holdout_accuracy
        0.95
    """
    registry_file, reading = settings.added_models_file(), readable(settings)
    # The base's file is read only to export, after the features and the training: look for it
    # now, so a wrong --model-dir fails in a second, not after every epoch.
    spec = reading.registry().get(base)
    base_path = ModelStore(settings.model_dir).path(spec.files["model"])
    data = image_folder(data_uri)
    echo(f"{len(data)} images in {len(data.classes)} classes: {', '.join(data.classes)}")
    train_all, held_all = split(data, settings.holdout)
    emb = extract(data, reading, base, out_dir, fleet, work_uri, echo)
    for key, reason in list(emb.failed.items())[:10]:
        echo(f"left out {key}: {reason}")
    train, held = emb.has(train_all), emb.has(held_all)
    if len(set(data.labels[train].tolist())) < 2 or len(held) == 0:
        raise DatasetError(
            f"only {len(train)} training and {len(held)} held-out images could be read "
            f"({len(emb.failed)} failed); fix the failed files listed above"
        )
    x_train, x_held = emb.rows(train), emb.rows(held)
    y_train, y_held = data.labels[train], data.labels[held]
    baseline = nearest_centroid_accuracy(x_train, y_train, x_held, y_held)
    echo(f"baseline (nearest class centroid of {base} embeddings): {baseline:.3f} held-out")

    def on_epoch(epoch: int, history: Any) -> None:
        if epoch % max(1, epochs // 8) == 0 or epoch == epochs:
            echo(
                f"epoch {epoch}/{epochs}: loss {history.loss[-1]:.4f} "
                f"held-out accuracy {history.holdout_accuracy[-1]:.3f}"
            )

    trained = train_head(
        x_train, y_train, x_held, y_held, len(data.classes), head, epochs, on_epoch=on_epoch
    )
    accuracy = trained.history.holdout_accuracy[-1]
    model = export.with_head(export.load_graph(base_path), trained.layers())
    published = publish(
        model,
        out_dir,
        classes=list(data.classes),
        preprocess=spec.preprocess,
        held_images=lambda: data.images(held),
        expected=trained.predict_proba(x_held),
        atol=settings.parity_atol,
        history=trained.history,
        metrics={
            "method": f"head-{head}",
            "base": base,
            "data": data.storage.uri,
            "items": len(data),
            "trained": len(train),
            "held_out": len(held),
            "failed": emb.failed,
            "feature_job": emb.job_id,
            "baseline_accuracy": baseline,
            "holdout_accuracy": accuracy,
        },
        title=f"{name or out_dir.name}: {head} head on {base}",
        name=name,
        model_dir=settings.model_dir,
        registry_file=registry_file,
    )
    echo(
        f"held-out accuracy {accuracy:.3f} (baseline {baseline:.3f}); parity max |Δp| "
        f"{published.parity.max_abs_diff:.2g} <= {settings.parity_atol:g}"
    )
    return Finetuned(baseline, accuracy, published)
