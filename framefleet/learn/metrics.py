"""Scores: classification from scikit-learn, detection from pycocotools (COCO evaluation is called,
never reimplemented), each with its plots.

Classification: accuracy, per-class precision / recall / F1, confusion matrix, one-vs-rest
precision-recall curves from the classes' confidences. Detection: COCO mAP@[.5:.95], mAP@.5,
mAP@.75, small / medium / large, AR, per-class AP and AP@.5, per-class precision-recall curves at
IoU 0.5 (pycocotools' interpolated precision at its 101 recall points).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from framefleet.core.errors import DatasetError
from framefleet.core.results import Detections
from framefleet.learn import plots

OTHER = "(other)"
"""Confusion-matrix column of predictions that name none of the truth's classes."""

COCO_STATS = (
    "mAP", "mAP_50", "mAP_75", "mAP_small", "mAP_medium", "mAP_large",
    "AR_1", "AR_10", "AR_100", "AR_small", "AR_medium", "AR_large",
)  # fmt: skip
"""Names of pycocotools' ``COCOeval.stats``, in its order (-1: no truth in that range)."""


def classification(
    classes: Sequence[str],
    truth: npt.NDArray[np.int64],
    predictions: Sequence[Detections],
    out_dir: Path,
) -> dict[str, Any]:
    """Score top-1 predictions against ImageFolder truth; write the confusion matrix and PR plots.

    Args:
        classes: the truth's class names (class id = index).
        truth: (N,) class id of each item.
        predictions: each item's result rows (best first, ``data["class_name"]`` set).
        out_dir: where confusion_matrix.png and pr_curves.png go.

    Returns:
        metrics: accuracy, per_class {precision, recall, f1, support}, confusion (rows truth,
        columns predicted, the last column ``(other)`` when a prediction names no truth class).
    """
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        precision_recall_curve,
        precision_recall_fscore_support,
    )

    index = {name: i for i, name in enumerate(classes)}
    other = len(classes)
    predicted = np.array([_top1(d, index, other) for d in predictions], np.int64)
    scores = np.zeros((len(predictions), len(classes)))
    for row, detections in enumerate(predictions):
        for name, score in zip(_names(detections), detections.confidence, strict=True):
            if name in index:
                scores[row, index[name]] = max(scores[row, index[name]], float(score))
    labels = list(range(len(classes))) + ([other] if (predicted == other).any() else [])
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=list(range(len(classes))), zero_division=0
    )
    matrix = confusion_matrix(truth, predicted, labels=labels)
    names = [*classes, OTHER][: len(labels)]
    plots.confusion_matrix(matrix, names, out_dir / "confusion_matrix.png")
    curves = {}
    for k, name in enumerate(classes):
        if (truth == k).any():
            p, r, _ = precision_recall_curve(truth == k, scores[:, k])
            curves[name] = (np.asarray(r), np.asarray(p))
    plots.pr_curves(curves, out_dir / "pr_curves.png")
    return {
        "task": "classification",
        "items": len(truth),
        "accuracy": float(accuracy_score(truth, predicted)),
        "per_class": {
            name: {
                "precision": float(precision[k]),
                "recall": float(recall[k]),
                "f1": float(f1[k]),
                "support": int(support[k]),
            }
            for k, name in enumerate(classes)
        },
        "confusion": {"labels": names, "matrix": matrix.tolist()},
    }


def _names(detections: Detections) -> list[str]:
    names = detections.data.get("class_name")
    if names is None:
        return [f"class_{int(c)}" for c in detections.class_id]
    return [str(n) for n in names]


def _top1(detections: Detections, index: Mapping[str, int], other: int) -> int:
    if not len(detections):
        return other
    best = int(np.argmax(detections.confidence))
    return index.get(_names(detections)[best], other)


def load_coco(truth: Path) -> Any:
    """The COCO ground truth in ``truth`` (pycocotools' ``COCO``), its chatter silenced.

    Raises:
        DatasetError: not a readable COCO detection file.
    """
    from pycocotools.coco import COCO

    try:
        dataset = json.loads(truth.read_text(encoding="utf-8"))
        for key in ("images", "annotations", "categories"):
            if not isinstance(dataset.get(key), list):
                raise DatasetError(f"{truth} has no {key!r} list; is it COCO detection JSON?")
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read COCO ground truth {truth}: {exc}") from exc
    gt = COCO()
    gt.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def coco_results(
    gt: Any, predictions: Mapping[str, Detections]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """COCO result rows (``bbox`` as x, y, w, h) for predictions keyed by image ``file_name``.

    Predicted classes are matched to the truth's categories by name. Returns the rows and the
    count of dropped boxes per class name the truth does not have.
    """
    image_ids = {img["file_name"]: img["id"] for img in gt.dataset["images"]}
    categories = {cat["name"]: cat["id"] for cat in gt.dataset["categories"]}
    rows: list[dict[str, Any]] = []
    dropped: dict[str, int] = {}
    for file_name, detections in predictions.items():
        image_id = image_ids[file_name]
        for name, box, score in zip(
            _names(detections), detections.xyxy, detections.confidence, strict=True
        ):
            if name not in categories:
                dropped[name] = dropped.get(name, 0) + 1
                continue
            x1, y1, x2, y2 = (float(v) for v in box)
            rows.append(
                {
                    "image_id": image_id,
                    "category_id": categories[name],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(score),
                }
            )
    return rows, dropped


def detection(gt: Any, predictions: Mapping[str, Detections], out_dir: Path) -> dict[str, Any]:
    """COCO box evaluation (pycocotools' ``COCOeval``) of ``predictions`` against ``gt``; writes
    pr_curves.png (per class, IoU 0.5).

    Args:
        gt: from `load_coco`.
        predictions: Detections per image ``file_name`` of the truth; an image without an entry
            has no predictions.

    Returns:
        metrics: the 12 COCO figures by name (`COCO_STATS`), per-class AP and AP@.5 (None for
        a class with no truth), the dropped predictions.

    Raises:
        DatasetError: a prediction for an image the truth does not list.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    unknown = sorted(set(predictions) - {img["file_name"] for img in gt.dataset["images"]})
    if unknown:
        raise DatasetError(
            f"predictions for images the ground truth does not list: {unknown[:5]}; its "
            "images[].file_name must be the keys relative to --data"
        )
    rows, dropped = coco_results(gt, predictions)
    with contextlib.redirect_stdout(io.StringIO()):
        if rows:
            dt = gt.loadRes(rows)
        else:  # loadRes cannot take an empty list: an empty result set scores 0, as it should
            dt = COCO()
            dt.dataset = {
                "images": gt.dataset["images"],
                "categories": gt.dataset["categories"],
                "annotations": [],
            }
            dt.createIndex()
        evaluator = COCOeval(gt, dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    precision = evaluator.eval["precision"]  # [IoU T, recall R, class K, area A, max dets M]
    per_class: dict[str, dict[str, float | None]] = {}
    curves = {}
    recall_points = np.asarray(evaluator.params.recThrs)
    for k, cat_id in enumerate(evaluator.params.catIds):
        name = gt.cats[cat_id]["name"]
        all_iou = precision[:, :, k, 0, -1]
        at_50 = precision[0, :, k, 0, -1]
        per_class[name] = {
            "AP": _mean_valid(all_iou),
            "AP_50": _mean_valid(at_50),
            "truth": len(gt.getAnnIds(catIds=[cat_id], iscrowd=False)),
        }
        if (at_50 > -1).any():
            curves[name] = (recall_points, np.where(at_50 > -1, at_50, 0.0))
    plots.pr_curves(curves, out_dir / "pr_curves.png", "precision-recall per class, IoU 0.5")
    return {
        "task": "detection",
        "images": len(gt.dataset["images"]),
        "predictions": len(rows),
        **{name: float(v) for name, v in zip(COCO_STATS, evaluator.stats, strict=True)},
        "per_class": per_class,
        "dropped_predictions": dropped,
    }


def _mean_valid(values: npt.NDArray[np.float64]) -> float | None:
    """pycocotools' convention: -1 marks "no truth"; the mean of the rest, None if none."""
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else None
