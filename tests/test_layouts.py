"""The layouts of models people bring, on synthetic outputs: letterbox and crop arithmetic, each
family's decoding, what `models add` reads from a graph, and the registry file it writes.

The same families on real exported files, against their libraries' own predictors, are in
tests/test_own_models.py (which needs the reference venv).
"""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as Pil

from framefleet.core.errors import ConfigError, ModelLoadError
from framefleet.core.registry import ModelSpec, Postprocess, Preprocess, load_registry
from framefleet.core.registryfile import add_entry
from framefleet.core.results import Detections
from framefleet.inference.engines import CvDnnEngine
from framefleet.inference.models import propose
from framefleet.inference.models.detr import DetrAdapter, query_scores
from framefleet.inference.models.graph import Graph
from framefleet.inference.models.image_classifier import ImageClassifierAdapter
from framefleet.inference.models.preprocessing import (
    Meta,
    center_crop,
    letterbox_centered,
    to_blob,
)
from framefleet.inference.models.yolo_e2e import YoloE2eAdapter
from framefleet.inference.models.yolov8 import decode_columns
from framefleet.inference.models.yolov8_pose import Yolov8PoseAdapter

NAMES = "{0: 'person', 1: 'car'}"
ULTRALYTICS = {"author": "Ultralytics", "names": NAMES, "imgsz": "[320, 320]"}


def spec(family: str, task: str = "detection", **layout: object) -> ModelSpec:
    return ModelSpec(
        name="m",
        task=task,  # type: ignore[arg-type]
        family=family,
        files={},
        preprocess=Preprocess(input_wh=(320, 320), resize="letterbox", center=True),
        postprocess=Postprocess(score_threshold=0.25, nms_threshold=0.7, top_k=300),
        layout=dict(layout),
    )


def graph(outputs: dict[str, tuple[int, ...]], **metadata: str) -> Graph:
    return Graph(
        path=Path("m.onnx"),
        input_name="images",
        input_shape=(1, 3, 320, 320),
        input_wh=(320, 320),
        outputs=outputs,
        metadata=dict(metadata),
    )


def test_centred_letterbox_rounds_as_ultralytics_and_maps_back() -> None:
    """512x929 into 320: scaled to 176x320 (round, not int), 72 px of padding left, and the
    true per-axis gains map input pixels back onto the image exactly."""
    image = np.zeros((929, 512, 3), np.uint8)
    padded, ratio, pad = letterbox_centered(image, (320, 320), 114)
    assert padded.shape == (320, 320, 3)
    assert pad == (72, 0)
    assert padded[0, 71, 0] == 114
    assert padded[0, 72, 0] == 0
    assert padded[0, 248, 0] == 114
    _, meta = to_blob(image, spec("yolov8").preprocess)
    assert meta.pad_xy == (72, 0)
    assert meta.gain_xy == pytest.approx((176 / 512, 320 / 929))
    corners = np.array([[72.0, 0.0, 248.0, 320.0]], np.float32)
    np.testing.assert_allclose(meta.to_image(corners), [[0, 0, 512, 929]], atol=1e-3)
    assert ratio == pytest.approx(320 / 929)


def test_a_dynamic_size_file_is_padded_to_the_stride_only() -> None:
    """Ultralytics' rectangle for files that take any size: 768x576 at 320 is 320x256."""
    image = np.zeros((576, 768, 3), np.uint8)
    padded, _, pad = letterbox_centered(image, (320, 320), 114, stride=32)
    assert padded.shape == (256, 320, 3)
    assert pad == (0, 8)
    blob, meta = to_blob(image, replace(spec("yolov8").preprocess, stride=32))
    assert blob.shape == (1, 3, 256, 320)
    assert meta.input_wh == (320, 256)


def test_center_crop_is_torchvisions_resize_and_crop() -> None:
    """Shorter side to 256 with PIL's antialiased bilinear, then the central 224 square."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (300, 500, 3), dtype=np.uint8)
    crop = center_crop(image, (224, 224), 0.875)
    expected = np.asarray(Pil.fromarray(image).resize((426, 256), Pil.Resampling.BILINEAR))
    top, left = round((256 - 224) / 2), round((426 - 224) / 2)
    np.testing.assert_array_equal(crop, expected[top : top + 224, left : left + 224])


def test_yolov8_columns_decode_threshold_and_per_class_nms() -> None:
    """Two overlapping boxes of one class: the weaker goes; the same box in another class stays;
    a score at the threshold is dropped (Ultralytics keeps score > conf)."""
    cols = np.zeros((4 + 2, 5), np.float32)
    cols[:4] = np.array([[100, 100, 40, 40], [102, 100, 40, 40], [100, 100, 40, 40],
                         [200, 200, 20, 20], [10, 10, 5, 5]], np.float32).T  # fmt: skip
    cols[4, 0], cols[4, 1], cols[5, 2], cols[4, 3], cols[4, 4] = 0.9, 0.8, 0.7, 0.25, 0.1
    meta = Meta(image_wh=(320, 320), input_wh=(320, 320))
    xyxy, scores, classes, kept = decode_columns(cols, 2, meta, spec("yolov8").postprocess)
    assert kept.tolist() == [0, 2]
    assert classes.tolist() == [0, 1]
    np.testing.assert_allclose(xyxy[0], [80, 80, 120, 120])
    np.testing.assert_allclose(scores, [0.9, 0.7])


def test_pose_keypoints_map_back_and_clip_to_the_image() -> None:
    adapter = Yolov8PoseAdapter(spec("yolov8-pose", "pose", keypoints=[2, 3]), _no_engine(), ["p"])
    cols = np.zeros((4 + 1 + 6, 20), np.float32)  # anchors outnumber channels, as in any file
    cols[:4, 0] = [160, 160, 100, 100]
    cols[4, 0] = 0.9
    cols[5:, 0] = [170, 150, 0.8, 400, 10, 0.2]  # the second point lies right of the input
    meta = Meta(image_wh=(640, 640), input_wh=(320, 320), ratio=0.5, gain_xy=(0.5, 0.5))
    found = adapter.postprocess({"output0": cols[None]}, meta)
    assert found.landmarks is not None
    np.testing.assert_allclose(found.landmarks[0], [[340, 300], [640, 20]])
    np.testing.assert_allclose(found.data["keypoint_score"][0], [0.8, 0.2])


def test_end_to_end_rows_are_thresholded_only() -> None:
    adapter = YoloE2eAdapter(spec("yolo-e2e"), _no_engine(), ["person", "car"])
    rows = np.zeros((1, 300, 6), np.float32)
    rows[0, 0] = [10, 10, 50, 50, 0.9, 1]
    rows[0, 1] = [12, 10, 50, 50, 0.8, 1]  # overlapping, kept: the graph already suppressed
    rows[0, 2] = [0, 0, 5, 5, 0.2, 0]
    found = adapter.postprocess({"output0": rows}, Meta((320, 320), (320, 320)))
    assert found.data["class_name"].tolist() == ["car", "car"]


@pytest.mark.parametrize("layout", ["columns", "probabilities", "sigmoid", "softmax"])
def test_detr_layouts_give_the_same_detections(layout: str) -> None:
    """One query, a car at the image's centre, written the four ways exporters write it."""
    box = np.array([0.5, 0.5, 0.2, 0.4], np.float32)
    if layout == "columns":
        raw = {"output0": np.array([[[*box, 0.8, 1], [*box, 0.1, 0]]], np.float32)}
    elif layout == "probabilities":
        raw = {"output0": np.array([[[*box, 0.1, 0.8], [*box, 0.1, 0.1]]], np.float32)}
    elif layout == "sigmoid":
        logit = float(np.log(0.8 / 0.2))
        raw = {"dets": np.stack([box, box])[None], "labels": np.array([[[-9, logit], [-9, -9]]])}
    else:  # logits over car, person... and "no object" last
        logits = np.log(np.array([[[0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]], np.float32))
        raw = {"pred_boxes": np.stack([box, box])[None], "logits": logits}
    _, scores, classes = query_scores(raw, layout)
    assert classes.tolist()[0] == 1
    np.testing.assert_allclose(scores[0], 0.8, atol=1e-5)
    adapter = DetrAdapter(spec("detr", scores=layout), _no_engine(), ["person", "car"])
    found = adapter.postprocess(raw, Meta(image_wh=(200, 100), input_wh=(320, 320)))
    assert found.data["class_name"].tolist() == ["car"]
    np.testing.assert_allclose(found.xyxy, [[80, 30, 120, 70]], atol=1e-4)
    np.testing.assert_allclose(found.confidence, [0.8], atol=1e-5)


def test_classifier_applies_softmax_to_logits_only() -> None:
    logits = np.array([[1.0, 3.0, 2.0]], np.float32)
    meta = Meta((10, 10), (10, 10))
    top3 = Postprocess(top_k=3, score_threshold=0.0)
    with_softmax = replace(spec("image-classifier", softmax=True), postprocess=top3)
    as_logits = ImageClassifierAdapter(with_softmax, _no_engine(), [])
    found = as_logits.postprocess({"logits": logits}, meta)
    expected = np.exp(logits[0]) / np.exp(logits[0]).sum()
    np.testing.assert_allclose(found.confidence, np.sort(expected)[::-1], rtol=1e-5)
    without = replace(spec("image-classifier", softmax=False), postprocess=top3)
    as_probs = ImageClassifierAdapter(without, _no_engine(), [])
    probs = as_probs.postprocess({"output0": logits / logits.sum()}, meta)
    np.testing.assert_allclose(probs.confidence, [0.5, 2 / 6, 1 / 6], rtol=1e-5)


def test_propose_reads_ultralytics_metadata_and_the_output_shapes() -> None:
    detect = propose(graph({"output0": (1, 6, 2100)}, task="detect", **ULTRALYTICS))
    assert (detect.family, detect.labels) == ("yolov8", ["person", "car"])
    e2e = propose(graph({"output0": (1, 300, 6)}, task="detect", end2end="True", **ULTRALYTICS))
    assert e2e.family == "yolo-e2e"  # nc = 2: (1, 6, ...) would fit yolov8 too; end2end decides
    pose = propose(
        graph({"output0": (1, 57, 2100)}, task="pose", kpt_shape="[17, 3]", **ULTRALYTICS)
    )
    assert (pose.family, pose.layout) == ("yolov8-pose", {"keypoints": [17, 3]})
    detr = propose(graph({"dets": (1, 300, 4), "labels": (1, 300, 91)}))
    assert (detr.family, detr.layout) == ("detr", {"scores": "sigmoid"})
    classifier = propose(graph({"logits": (1, 10)}))
    assert (classifier.family, classifier.layout["softmax"]) == ("image-classifier", True)
    assert classifier.preprocess["crop_fraction"] == 0.875


def test_propose_names_the_outputs_when_no_family_fits() -> None:
    with pytest.raises(ModelLoadError, match=r"outputs a \(1, 5\), b \(1, 7, 7\).*--family"):
        propose(graph({"a": (1, 5), "b": (1, 7, 7)}))
    with pytest.raises(ConfigError, match="unknown family 'yolov99'"):
        propose(graph({"a": (1, 5)}), family="yolov99")


def test_add_entry_appends_keeps_comments_and_refuses_a_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text('# my models\n[models.old]\ntask = "detection"\n')
    entry = {
        "task": "detection",
        "family": "yolov8",
        "files": {"model": {"path": "added/new.onnx"}},
        "preprocess": {"input_wh": [320, 320], "resize": "letterbox", "center": True},
        "layout": {"keypoints": [17, 3]},
    }
    add_entry(path, "new", entry)
    text = path.read_text()
    assert text.startswith("# my models\n")
    assert tomllib.loads(text)["models"]["new"] == entry
    with pytest.raises(ConfigError, match=r"already has a model called 'new'.*--replace"):
        add_entry(path, "new", entry)
    add_entry(path, "new", {**entry, "task": "pose"}, replace=True)
    assert tomllib.loads(path.read_text())["models"]["new"]["task"] == "pose"
    path.write_text(text.replace("[models.old]\n", "").replace('task = "detection"\n', "", 1))
    registry = load_registry(path)
    assert registry.get("new").preprocess.center is True
    assert registry.get("new").layout == {"keypoints": [17, 3]}


def test_detections_without_rows_keep_their_landmarks_through_json() -> None:
    empty = Detections(
        xyxy=np.zeros((0, 4)), confidence=[], class_id=[], landmarks=np.zeros((0, 17, 2))
    )
    again = Detections.from_json(empty.to_json())
    assert again.landmarks is not None
    assert again.landmarks.shape[0] == 0


def _no_engine() -> CvDnnEngine:
    """An engine object for adapters whose postprocess is tested alone (never run)."""
    return CvDnnEngine.__new__(CvDnnEngine)
