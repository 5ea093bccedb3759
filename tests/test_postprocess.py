"""Pre- and postprocessing on synthetic arrays: no network runs here.

Each decoder gets a fake raw output built from known boxes (tests/helpers.py) and must recover
them in image pixels, clipped, thresholded, NMS-ed and named.
"""

from __future__ import annotations

from contextlib import nullcontext as does_not_raise
from dataclasses import replace

import numpy as np
import pytest
from helpers import (
    fake_fastestdet,
    fake_logits,
    fake_ssd,
    fake_ulfd,
    fake_yolox,
    fake_yunet,
    iou,
)

from framefleet.core.errors import ModelError
from framefleet.core.registry import Postprocess, Preprocess, load_registry
from framefleet.inference.models.base import Adapter, Blob, Meta, RawOutputs
from framefleet.inference.models.deeplab import DeeplabAdapter, decode_segmentation
from framefleet.inference.models.fastestdet import FastestDetAdapter
from framefleet.inference.models.mobilenet import MobilenetAdapter, decode_topk
from framefleet.inference.models.nms import nms, pick_output, select
from framefleet.inference.models.preprocessing import letterbox, to_blob
from framefleet.inference.models.ssd import SsdAdapter
from framefleet.inference.models.ulfd import UlfdAdapter
from framefleet.inference.models.yolox import YoloxAdapter
from framefleet.inference.models.yunet import YunetAdapter

REGISTRY = load_registry()
LABELS = [f"class{i}" for i in range(1001)]


class NoEngine:
    """Postprocess tests never run a network."""

    name = "none"

    def forward(self, blob: Blob) -> RawOutputs:
        raise AssertionError("postprocess tests must not call the engine")


def adapter(cls: type[Adapter], model: str, labels: list[str] | None = None) -> Adapter:
    return cls(REGISTRY.get(model), NoEngine(), LABELS if labels is None else labels)


# --- preprocessing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image_hw", "input_wh", "ratio", "content_hw"),
    [
        # landscape: width limits, content fills the top rows
        pytest.param((576, 768), (416, 416), 416 / 768, (312, 416), id="landscape"),
        # portrait: height limits, content fills the left columns
        pytest.param((929, 512), (416, 416), 416 / 929, (416, 229), id="portrait"),
        # 773 * (416 / 773) is 415.99999 in floats: truncated to 415, as the YOLOX reference does
        pytest.param((512, 773), (416, 416), 416 / 773, (275, 415), id="float-edge"),
        # smaller than the input: scaled up
        pytest.param((100, 200), (416, 416), 416 / 200, (208, 416), id="upscale"),
        # exact fit: no padding at all
        pytest.param((416, 416), (416, 416), 1.0, (416, 416), id="exact"),
    ],
)
def test_letterbox_ratio_and_placement(image_hw, input_wh, ratio, content_hw):
    image = np.full((*image_hw, 3), 200, np.uint8)
    padded, got_ratio = letterbox(image, input_wh, pad_value=114)
    assert padded.shape == (input_wh[1], input_wh[0], 3)
    assert got_ratio == pytest.approx(ratio)
    ch, cw = content_hw
    assert (padded[:ch, :cw] == 200).all()  # image at top-left
    assert (padded[ch:] == 114).all()
    assert (padded[:, cw:] == 114).all()


@pytest.mark.parametrize(
    ("pre", "shape", "pixel"),
    [
        # YOLOX: letterbox, raw BGR 0..255
        pytest.param(
            Preprocess((416, 416), "letterbox", pad_value=114),
            (1, 3, 416, 416),
            [10, 20, 30],
            id="letterbox-raw",
        ),
        # FastestDet: stretch, scale 1/255
        pytest.param(
            Preprocess((352, 352), "stretch", scale=1 / 255),
            (1, 3, 352, 352),
            [10 / 255, 20 / 255, 30 / 255],
            id="stretch-scale",
        ),
        # ULFD-style: RGB, mean then scale
        pytest.param(
            Preprocess((320, 240), "stretch", scale=1 / 128, mean=(127, 127, 127), swap_rb=True),
            (1, 3, 240, 320),
            [(30 - 127) / 128, (20 - 127) / 128, (10 - 127) / 128],
            id="rgb-mean",
        ),
        # std divides after mean and scale
        pytest.param(
            Preprocess((8, 8), "stretch", mean=(10, 10, 10), std=(2, 5, 10)),
            (1, 3, 8, 8),
            [0, 2, 2],
            id="std",
        ),
        # YuNet: the image at its own size, untouched
        pytest.param(Preprocess((640, 640), "none"), (1, 3, 48, 64), [10, 20, 30], id="none"),
    ],
)
def test_to_blob_follows_recipe(pre, shape, pixel):
    image = np.zeros((48, 64, 3), np.uint8)
    image[:] = (10, 20, 30)  # B, G, R
    blob, meta = to_blob(image, pre)
    assert blob.shape == shape
    assert blob.dtype == np.float32
    np.testing.assert_allclose(blob[0, :, 0, 0], pixel, rtol=1e-5, atol=1e-6)
    assert meta.image_wh == (64, 48)
    assert meta.input_wh == (shape[3], shape[2])


def test_to_blob_letterbox_meta_and_padding():
    blob, meta = to_blob(
        np.zeros((576, 768, 3), np.uint8), Preprocess((416, 416), "letterbox", pad_value=114)
    )
    assert meta.ratio == pytest.approx(416 / 768)
    assert blob[0, :, 415, 0].tolist() == [114, 114, 114]  # bottom padding
    assert blob[0, :, 0, 0].tolist() == [0, 0, 0]


def test_to_blob_rejects_grayscale():
    with pytest.raises(ValueError, match=r"image must be H×W×3 BGR, got shape \(4, 4\)"):
        to_blob(np.zeros((4, 4), np.uint8), Preprocess((4, 4)))


# --- NMS --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("xyxy", "scores", "class_ids", "top_k", "kept"),
    [
        # no boxes: nothing to do, and OpenCV is not called with empty lists
        pytest.param([], [], [], 0, [], id="empty"),
        # same class, IoU 0.81: the weaker goes
        pytest.param([[0, 0, 10, 10], [1, 1, 10, 10]], [0.8, 0.9], [0, 0], 0, [1], id="suppress"),
        # same boxes, different classes: both stay
        pytest.param(
            [[0, 0, 10, 10], [0, 0, 10, 10]], [0.8, 0.9], [0, 1], 0, [1, 0], id="per-class"
        ),
        # disjoint boxes stay, best score first
        pytest.param(
            [[0, 0, 10, 10], [20, 20, 30, 30]], [0.5, 0.9], [0, 0], 0, [1, 0], id="disjoint"
        ),
        # IoU 0.33 (x 0..10 vs 5..15) is below 0.45: both stay; proves xyxy -> xywh conversion
        pytest.param([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], [0, 0], 0, [0, 1], id="xywh"),
        # top_k caps the count
        pytest.param(
            [[0, 0, 1, 1], [5, 5, 6, 6], [9, 9, 10, 10]],
            [0.7, 0.9, 0.8],
            [0, 0, 0],
            2,
            [1, 2],
            id="top-k",
        ),
    ],
)
def test_nms(xyxy, scores, class_ids, top_k, kept):
    assert nms(xyxy, scores, class_ids, iou_threshold=0.45, top_k=top_k).tolist() == kept


def test_select_thresholds_before_nms():
    xyxy = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.3, 0.9, 0.5], np.float32)
    keep = select(xyxy, scores, np.zeros(3, np.intp), Postprocess(0.4, 0.45, top_k=10))
    assert keep.tolist() == [1, 2]


@pytest.mark.parametrize(
    ("raw", "expectation"),
    [
        # exactly one fits: taken whatever its name and position
        pytest.param(
            {"a": np.zeros((1, 4)), "b": np.zeros((1, 1, 5, 7))}, does_not_raise(), id="one"
        ),
        # none fits
        pytest.param(
            {"a": np.zeros((1, 4))},
            pytest.raises(ModelError, match=r"expected one output shaped 1×1×N×7, got 0"),
            id="none",
        ),
        # two fit: ambiguous, refuse rather than guess
        pytest.param(
            {"a": np.zeros((1, 1, 5, 7)), "b": np.zeros((1, 1, 2, 7))},
            pytest.raises(ModelError, match=r"got 2 among \{a: \(1, 1, 5, 7\)"),
            id="two",
        ),
    ],
)
def test_pick_output(raw, expectation):
    with expectation:
        pick_output(raw, lambda a: a.ndim == 4 and a.shape[-1] == 7, "1×1×N×7")


# --- detectors --------------------------------------------------------------------------------


def test_yolox_recovers_boxes_through_letterbox():
    ratio = 416 / 768  # a 768×576 image letterboxed into 416×416
    meta = Meta(image_wh=(768, 576), input_wh=(416, 416), ratio=ratio)
    raw = {
        "whatever": fake_yolox(
            [
                ((100, 100, 40, 60), 0.9, 16, 0.95),  # kept
                ((300, 200, 80, 80), 0.9, 2, 0.3),
            ]
        )
    }  # 0.27 < 0.4: dropped
    d = adapter(YoloxAdapter, "yolox-nano").postprocess(raw, meta)
    assert d.class_id.tolist() == [16]
    assert d.data["class_name"].tolist() == ["class16"]
    assert d.confidence[0] == pytest.approx(0.9 * 0.95)
    expected = np.array([80, 70, 120, 130]) / ratio
    np.testing.assert_allclose(d.xyxy[0], expected, rtol=1e-4)


def test_yolox_clips_to_image_and_handles_empty():
    meta = Meta(image_wh=(100, 50), input_wh=(416, 416), ratio=416 / 100)
    yolox = adapter(YoloxAdapter, "yolox-nano")
    d = yolox.postprocess({"out": fake_yolox([((4, 4, 60, 60), 1.0, 0, 1.0)])}, meta)
    assert d.xyxy.min() >= 0
    assert d.xyxy[0].tolist() == pytest.approx([0, 0, 8.17, 8.17], abs=0.01)
    empty = yolox.postprocess({"out": fake_yolox([])}, meta)
    assert len(empty) == 0
    assert empty.data["class_name"].shape == (0,)


def test_yolox_wrong_input_size_is_a_precise_error():
    meta = Meta(image_wh=(100, 100), input_wh=(640, 640), ratio=1.0)
    with pytest.raises(ModelError, match=r"3549 rows, a 640×640 input gives 8400 cells"):
        adapter(YoloxAdapter, "yolox-nano").postprocess({"o": fake_yolox([])}, meta)


def test_fastestdet_recovers_fraction_boxes():
    meta = Meta(image_wh=(800, 600), input_wh=(352, 352))
    raw = {
        "758": fake_fastestdet(
            [
                ((0.5, 0.25, 0.2, 0.1), 0.9, 3, 0.8),  # 0.86: kept
                ((0.1, 0.9, 0.1, 0.1), 0.5, 1, 0.5),
            ]
        )
    }  # 0.5: dropped
    d = adapter(FastestDetAdapter, "fastestdet").postprocess(raw, meta)
    assert d.class_id.tolist() == [3]
    assert d.confidence[0] == pytest.approx(0.9**0.6 * 0.8**0.4, rel=1e-5)
    np.testing.assert_allclose(d.xyxy[0], [320, 120, 480, 180], atol=0.01)


def test_ulfd_keeps_faces_above_threshold_by_name():
    meta = Meta(image_wh=(640, 480), input_wh=(320, 240))
    raw = fake_ulfd([((0.1, 0.1, 0.2, 0.3), 0.99), ((0.5, 0.5, 0.6, 0.7), 0.5)])
    raw = {"boxes": raw["boxes"], "scores": raw["scores"]}  # order must not matter
    d = adapter(UlfdAdapter, "ulfd", labels=[]).postprocess(raw, meta)
    assert d.data["class_name"].tolist() == ["face"]
    np.testing.assert_allclose(d.xyxy[0], [64, 48, 128, 144], atol=0.01)


def test_ulfd_missing_output_names_the_ones_there_are():
    with pytest.raises(ModelError, match=r"expected an output named 'scores', got \['output'\]"):
        adapter(UlfdAdapter, "ulfd").postprocess({"output": np.zeros((1, 2))}, Meta((1, 1), (1, 1)))


@pytest.mark.parametrize(
    ("rows", "names", "xyxy"),
    [
        # label 12 (dog in VOC-21) -> class_id 11 in voc20; fractions scaled to 400×300
        pytest.param(
            [[0, 12, 0.9, 0.1, 0.2, 0.5, 0.6]], ["class11"], [[40, 60, 200, 180]], id="dog"
        ),
        # background rows and low confidence go, padding rows (image_id -1) too
        pytest.param(
            [[0, 0, 0.99, 0, 0, 1, 1], [0, 7, 0.3, 0, 0, 1, 1], [-1, 5, 0.9, 0, 0, 1, 1]],
            [],
            [],
            id="dropped",
        ),
        # boxes beyond the image are clipped
        pytest.param(
            [[0, 1, 0.8, -0.1, -0.1, 1.2, 0.5]], ["class0"], [[0, 0, 400, 150]], id="clipped"
        ),
        # no detections at all
        pytest.param([], [], [], id="empty"),
    ],
)
def test_ssd_decodes_detection_output(rows, names, xyxy):
    meta = Meta(image_wh=(400, 300), input_wh=(300, 300))
    d = adapter(SsdAdapter, "mobilenet-ssd").postprocess({"detection_out": fake_ssd(rows)}, meta)
    assert d.data["class_name"].tolist() == names
    np.testing.assert_allclose(d.xyxy, np.array(xyxy, np.float32).reshape(-1, 4), atol=0.01)


def test_yunet_rows_to_boxes_and_landmarks():
    meta = Meta(image_wh=(200, 100), input_wh=(200, 100))
    d = adapter(YunetAdapter, "yunet", labels=[]).postprocess(
        fake_yunet([((10, 20, 50, 80), 0.9), ((150, 10, 190, 60), 0.8)]), meta
    )
    assert d.data["class_name"].tolist() == ["face", "face"]
    assert d.xyxy[0].tolist() == [10, 20, 50, 80]
    assert d.landmarks is not None
    assert d.landmarks.shape == (2, 5, 2)
    assert d.landmarks[0, 2].tolist() == [30, 50]  # the fake's centre point
    empty = adapter(YunetAdapter, "yunet").postprocess(fake_yunet([]), meta)
    assert len(empty) == 0
    assert empty.landmarks is not None
    assert empty.landmarks.shape == (0, 5, 2)


# --- classification and segmentation ----------------------------------------------------------


@pytest.mark.parametrize(
    ("post", "ids"),
    [
        # the k best, best first
        pytest.param(Postprocess(score_threshold=0.0, top_k=3), [2, 0, 3], id="top-3"),
        # the threshold cuts below top_k
        pytest.param(Postprocess(score_threshold=0.15, top_k=3), [2, 0], id="threshold"),
        # top_k above the class count: all of them
        pytest.param(Postprocess(score_threshold=0.0, top_k=10), [2, 0, 3, 1], id="k-above-n"),
    ],
)
def test_topk(post, ids):
    got, scores = decode_topk(np.array([0.2, 0.05, 0.65, 0.1], np.float32), post)
    assert got.tolist() == ids
    assert (np.diff(scores) <= 0).all()


def test_mobilenet_rows_span_the_image():
    probs = np.zeros((1, 1001), np.float32)
    probs[0, [89, 1]] = 0.7, 0.2
    raw = {"embedding": np.zeros((1, 1280), np.float32), "output": probs}
    d = adapter(MobilenetAdapter, "mobilenet-v2").postprocess(raw, Meta((512, 929), (224, 224)))
    assert d.class_id[:2].tolist() == [89, 1]
    assert d.data["class_name"][0] == "class89"
    assert (d.xyxy == [0, 0, 512, 929]).all()


def test_segmentation_rows_per_class_except_background():
    class_map = np.zeros((10, 20), np.intp)
    class_map[2:5, 4:10] = 8  # 18 pixels of class 8
    class_map[6:10, 0:2] = 15  # 8 pixels of class 15
    logits = fake_logits(class_map)
    xyxy, scores, ids, masks = decode_segmentation(logits[0], (40, 20), Postprocess(0.0, top_k=10))
    assert sorted(ids.tolist()) == [8, 15]
    by_id = dict(zip(ids.tolist(), range(len(ids)), strict=True))
    # the class map is resized ×2 to the image with nearest neighbour
    assert xyxy[by_id[8]].tolist() == [8, 4, 20, 10]
    assert masks[by_id[8]].sum() == 18 * 4
    assert masks.shape == (2, 20, 40)
    assert xyxy[by_id[15]].tolist() == [0, 12, 4, 20]
    # softmax of a 4.0 margin over 21 classes
    assert scores[0] == pytest.approx(np.exp(4) / (np.exp(4) + 20), rel=1e-5)


def test_segmentation_background_only_is_empty():
    d = adapter(DeeplabAdapter, "deeplab-v3").postprocess(
        {"output": fake_logits(np.zeros((8, 8), np.intp))}, Meta((16, 16), (8, 8))
    )
    assert len(d) == 0
    assert d.mask is not None
    assert d.mask.shape == (0, 16, 16)


def test_segmentation_threshold_and_top_k():
    class_map = np.zeros((4, 4), np.intp)
    class_map[0, :] = 1
    class_map[1, :] = 2
    logits = fake_logits(class_map)
    logits[0, 2, 1, :] = 1.0  # class 2 wins weakly
    post = replace(REGISTRY.get("deeplab-v3").postprocess, score_threshold=0.5)
    _, _, ids, _ = decode_segmentation(logits[0], (4, 4), post)
    assert ids.tolist() == [1]
    _, _, ids, _ = decode_segmentation(logits[0], (4, 4), Postprocess(0.0, top_k=1))
    assert ids.tolist() == [1]


def test_iou_helper():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
