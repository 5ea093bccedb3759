"""framefleet evaluate: detection metrics equal pycocotools' to 1e-4 (crowd boxes, empty images,
classes with no truth, a class the truth lacks), exactly known answers on synthetic sets, real
YOLOX-nano on shared images with boxes checked by hand, classification metrics equal
scikit-learn's, and readable plots."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
from helpers import IMAGES_DIR, MODEL_DIR, make_detections
from learnfix import assert_readable_png
from test_e2e import run_cli

from framefleet.core.documents import ImageDocument, ModelInfo
from framefleet.core.errors import DatasetError
from framefleet.core.outputs import result_key
from framefleet.core.results import Detections
from framefleet.core.settings import Settings
from framefleet.learn.evaluate import Source, evaluate
from framefleet.learn.metrics import COCO_STATS

CATEGORIES = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 7, "name": "bird"}]


def ann(ann_id: int, image_id: int, cat: int, xywh: list[float], crowd: int = 0) -> dict:
    return {
        "id": ann_id, "image_id": image_id, "category_id": cat, "bbox": xywh,
        "area": xywh[2] * xywh[3], "iscrowd": crowd,
    }  # fmt: skip


# Four images: a.jpg two cats (one small) and a dog; b.jpg a dog and a crowd region of dogs;
# c.jpg empty (no truth at all); d.jpg one large cat. "bird" has no truth anywhere.
TRUTH = {
    "images": [
        {"id": 1, "file_name": "a.jpg", "width": 640, "height": 480},
        {"id": 2, "file_name": "sub/b.jpg", "width": 640, "height": 480},
        {"id": 3, "file_name": "c.jpg", "width": 640, "height": 480},
        {"id": 4, "file_name": "d.jpg", "width": 640, "height": 480},
    ],
    "categories": CATEGORIES,
    "annotations": [
        ann(1, 1, 1, [10, 10, 100, 80]),
        ann(2, 1, 1, [300, 300, 20, 20]),  # small
        ann(3, 1, 2, [400, 50, 150, 200]),
        ann(4, 2, 2, [50, 60, 200, 150]),
        ann(5, 2, 2, [300, 200, 300, 250], crowd=1),  # crowd: matches are ignored, not counted
        ann(6, 4, 1, [0, 0, 500, 400]),  # large
    ],
}

# Predictions as a finished job wrote them: xyxy boxes with class names, per image key.
PREDICTIONS = {
    "a.jpg": [
        ("cat", [12, 8, 108, 92], 0.9),
        ("cat", [298, 302, 318, 322], 0.6),
        ("dog", [20, 20, 100, 90], 0.55),  # a dog on the cat: false positive
        ("dog", [405, 45, 560, 250], 0.8),
        ("car", [0, 0, 50, 50], 0.7),  # a class the truth lacks: dropped
    ],
    "sub/b.jpg": [
        ("dog", [55, 65, 245, 215], 0.95),
        ("dog", [320, 220, 420, 330], 0.85),  # inside the crowd region: ignored
        ("dog", [450, 300, 590, 440], 0.5),  # inside the crowd region: ignored
        ("bird", [10, 400, 60, 450], 0.4),  # a class with no truth
    ],
    "c.jpg": [("cat", [100, 100, 200, 200], 0.3)],  # an empty image: a false positive
    "d.jpg": [("cat", [10, 5, 480, 390], 0.7), ("cat", [0, 0, 250, 200], 0.65)],
}


def detections(rows: list[tuple[str, list[float], float]]) -> Detections:
    names = [r[0] for r in rows]
    return make_detections(
        xyxy=[r[1] for r in rows],
        confidence=[r[2] for r in rows],
        class_id=[0] * len(rows),
        data={"class_name": names},
    )


def write_job_outputs(root: Path, predictions: dict[str, list]) -> None:
    """Result documents exactly as a worker writes them (the finished job's outputs)."""
    info = ModelInfo(name="some-detector", task="detection", sha256="0" * 64, engine="cv2.dnn")
    for key, rows in predictions.items():
        doc = ImageDocument(f"file:///in/{key}", info, 640, 480, detections(rows))
        path = root / result_key(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc.to_json()))


def pycocotools_reference(truth: Path, predictions: dict[str, list]) -> tuple[list[float], dict]:
    """COCOeval straight from pycocotools on the same inputs: the numbers to equal."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(truth))
        ids = {img["file_name"]: img["id"] for img in gt.dataset["images"]}
        cats = {c["name"]: c["id"] for c in gt.dataset["categories"]}
        rows = [
            {"image_id": ids[key], "category_id": cats[name], "score": score,
             "bbox": [x1, y1, x2 - x1, y2 - y1]}
            for key, preds in predictions.items()
            for name, (x1, y1, x2, y2), score in preds
            if name in cats
        ]  # fmt: skip
        e = COCOeval(gt, gt.loadRes(rows), "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    per_class = {}
    for k, cat_id in enumerate(e.params.catIds):
        p = e.eval["precision"][:, :, k, 0, -1]
        per_class[gt.cats[cat_id]["name"]] = float(p[p > -1].mean()) if (p > -1).any() else None
    return [float(v) for v in e.stats], per_class


def write_truth(path: Path, truth: dict) -> Path:
    path.write_text(json.dumps(truth))
    return path


def test_detection_metrics_equal_pycocotools(tmp_path: Path) -> None:
    truth = write_truth(tmp_path / "gt.json", TRUTH)
    write_job_outputs(tmp_path / "results", PREDICTIONS)
    metrics = evaluate(
        Settings(), Source(results_uri=str(tmp_path / "results")), str(tmp_path / "in"),
        tmp_path / "eval", truth,
    )  # fmt: skip
    stats, per_class = pycocotools_reference(truth, PREDICTIONS)
    for name, want in zip(COCO_STATS, stats, strict=True):
        assert metrics[name] == pytest.approx(want, abs=1e-4), name
    for name, want in per_class.items():
        got = metrics["per_class"][name]["AP"]
        assert got == (None if want is None else pytest.approx(want, abs=1e-4)), name
    assert metrics["per_class"]["bird"]["AP"] is None  # no truth: no AP, not zero
    assert metrics["dropped_predictions"] == {"car": 1}
    assert 0.3 < metrics["mAP"] < 0.9  # a real mix: not trivially 0 or 1
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["mAP_50"] == metrics["mAP_50"]
    assert_readable_png(tmp_path / "eval" / "pr_curves.png")


@pytest.mark.parametrize(
    ("case", "expected_map", "expected_map50"),
    [
        # every truth box predicted exactly with score 1: perfect
        pytest.param("perfect", 1.0, 1.0, id="perfect"),
        # nothing predicted anywhere: zero (pycocotools' loadRes cannot take an empty list)
        pytest.param("nothing", 0.0, 0.0, id="nothing"),
        # every box shifted to IoU 0.54 with its truth: a match at IoU .50 only, 1 of 10 thresholds
        pytest.param("iou-0.54", 1 / 10, 1.0, id="shifted-iou-0.54"),
    ],
)
def test_synthetic_sets_with_known_answers(
    tmp_path: Path, case: str, expected_map: float, expected_map50: float
) -> None:
    plain = {**TRUTH, "annotations": [a for a in TRUTH["annotations"] if not a["iscrowd"]]}
    truth = write_truth(tmp_path / "gt.json", plain)
    names = {c["id"]: c["name"] for c in CATEGORIES}
    files = {img["id"]: img["file_name"] for img in TRUTH["images"]}
    predictions: dict[str, list] = {files[i]: [] for i in files}
    if case != "nothing":
        for a in plain["annotations"]:
            x, y, w, h = a["bbox"]
            # shift right by 0.3 w: intersection 0.7 w, union 1.3 w, IoU 0.538
            dx = 0.3 * w if case == "iou-0.54" else 0.0
            predictions[files[a["image_id"]]].append(
                (names[a["category_id"]], [x + dx, y, x + dx + w, y + h], 1.0)
            )
    write_job_outputs(tmp_path / "results", predictions)
    metrics = evaluate(
        Settings(),
        Source(results_uri=str(tmp_path / "results")),
        "unused",
        tmp_path / "eval",
        truth,
    )
    assert metrics["mAP"] == pytest.approx(expected_map, abs=1e-4)
    assert metrics["mAP_50"] == pytest.approx(expected_map50, abs=1e-4)


def test_truth_that_is_not_coco_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "gt.json"
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(DatasetError, match="no 'annotations' list"):
        evaluate(Settings(), Source(results_uri=str(tmp_path)), "unused", tmp_path / "e", bad)


# Boxes checked by hand on the shared images (x, y, w, h in pixels), drawn over the pictures and
# compared by eye: darknet_dog.jpg has one dog, one bicycle, one car (the white pickup);
# darknet_horses.jpg has four horses (white, brown, grey, and a dark one at the left edge, half
# hidden). "cow" is a category with no truth (YOLOX-nano calls the grey horse a cow at 0.44).
HAND_TRUTH = {
    "images": [
        {"id": 1, "file_name": "darknet_dog.jpg", "width": 768, "height": 576},
        {"id": 2, "file_name": "darknet_horses.jpg", "width": 773, "height": 512},
    ],
    "categories": [
        {"id": 2, "name": "bicycle"}, {"id": 3, "name": "car"}, {"id": 18, "name": "dog"},
        {"id": 19, "name": "horse"}, {"id": 21, "name": "cow"},
    ],
    "annotations": [
        ann(1, 1, 18, [128, 220, 192, 325]),
        ann(2, 1, 2, [120, 130, 450, 290]),
        ann(3, 1, 3, [465, 75, 225, 95]),
        ann(4, 2, 19, [0, 185, 318, 225]),
        ann(5, 2, 19, [243, 170, 177, 190]),
        ann(6, 2, 19, [437, 213, 160, 132]),
        ann(7, 2, 19, [0, 183, 150, 147]),
    ],
}  # fmt: skip


@pytest.mark.integration
def test_evaluate_yolox_on_hand_checked_boxes_through_the_cli(
    settings: Settings, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for img in HAND_TRUTH["images"]:
        shutil.copy(IMAGES_DIR / img["file_name"], images / img["file_name"])
    truth = write_truth(tmp_path / "gt.json", HAND_TRUTH)
    result = run_cli(
        settings.with_(model_dir=MODEL_DIR), "evaluate", "--model", "yolox-nano",
        "--data", str(images), "--truth", str(truth), "--out", str(tmp_path / "eval"), "--local",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    print(result.stdout)
    per_class = metrics["per_class"]
    # one object each, found with the right class: AP@.5 exactly 1
    for name in ("dog", "bicycle", "car"):
        assert per_class[name]["AP_50"] == pytest.approx(1.0), name
    # three of four horses found, all ranked first (the half-hidden one is missed): precision 1
    # up to recall 0.75, i.e. at 76 of COCO's 101 recall points
    assert per_class["horse"]["AP_50"] == pytest.approx(76 / 101)
    assert per_class["cow"]["AP"] is None
    assert "mAP@.5" in result.stdout
    # and the same numbers straight from pycocotools on the documents the run would write
    from framefleet.inference import load_model

    model = load_model("yolox-nano", model_dir=MODEL_DIR)
    preds = {}
    for img in HAND_TRUTH["images"]:
        d = model(images / img["file_name"])
        preds[img["file_name"]] = [
            (str(n), [float(v) for v in b], float(s))
            for n, b, s in zip(d.data["class_name"], d.xyxy, d.confidence, strict=True)
        ]
    stats, _ = pycocotools_reference(truth, preds)
    for name, want in zip(COCO_STATS, stats, strict=True):
        assert metrics[name] == pytest.approx(want, abs=1e-4), name


# ImageNet classes MobileNetV2 gets right on the shared images (MANIFEST.md), plus one image
# filed under the wrong class on purpose: known accuracy 4/5.
CLASSIFIED = {
    "macaw": ["coral_parrot.jpg"],
    "Egyptian cat": ["coral_cat_720p.jpg"],
    "hotdog, hot dog, red hot": ["coral_hot_dog.jpg"],
    "military uniform": ["coral_grace_hopper.bmp", "darknet_dog.jpg"],
}


def test_classification_metrics_equal_scikit_learn(tmp_path: Path) -> None:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    data = tmp_path / "labelled"
    for label, names in CLASSIFIED.items():
        (data / label).mkdir(parents=True)
        for name in names:
            shutil.copy(IMAGES_DIR / name, data / label / name)
    settings = Settings(model_dir=MODEL_DIR)
    metrics = evaluate(settings, Source(model="mobilenet-v2"), str(data), tmp_path / "eval")
    assert metrics["accuracy"] == pytest.approx(4 / 5)
    classes = sorted(CLASSIFIED)
    assert list(metrics["per_class"]) == classes
    # the same figures from scikit-learn on the same top-1 names
    from framefleet.inference import load_model

    model = load_model("mobilenet-v2", model_dir=MODEL_DIR)
    truth, predicted = [], []
    for label in classes:
        for name in CLASSIFIED[label]:
            top = str(model(data / label / name).data["class_name"][0])
            truth.append(classes.index(label))
            predicted.append(classes.index(top) if top in classes else len(classes))
    p, r, f1, n = precision_recall_fscore_support(
        truth, predicted, labels=list(range(len(classes))), zero_division=0
    )
    for k, name in enumerate(classes):
        row = metrics["per_class"][name]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
            (p[k], r[k], f1[k], n[k])
        )
    labels = [*range(len(classes)), len(classes)]
    assert (
        metrics["confusion"]["matrix"] == confusion_matrix(truth, predicted, labels=labels).tolist()
    )
    assert metrics["confusion"]["labels"][-1] == "(other)"  # the dog is no ImageNet uniform
    assert_readable_png(tmp_path / "eval" / "confusion_matrix.png")
    assert_readable_png(tmp_path / "eval" / "pr_curves.png")
