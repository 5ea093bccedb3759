"""annotate(): pure, deterministic colours, annotators chosen by the model's task, sizes that
follow the image, and captions that never cover each other (also on a real model's output)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_detections

from framefleet.core.results import Detections
from framefleet.inference.annotate import (
    PALETTE,
    BoxAnnotator,
    ClassListAnnotator,
    LabelAnnotator,
    LandmarkAnnotator,
    MaskAnnotator,
    Scene,
    Style,
    annotate,
    annotators_for,
    color_of,
)

GREY = 128


def blank(h: int = 200, w: int = 300) -> np.ndarray:
    return np.full((h, w, 3), GREY, np.uint8)


def changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """H×W bool: pixels annotate() touched."""
    return (before != after).any(axis=2)


def test_input_untouched_and_empty_draws_nothing():
    image = blank()
    out = annotate(image, Detections.empty())
    assert out is not image
    assert (out == image).all()
    annotate(image, make_detections([(10, 10, 50, 50)]))
    assert (image == GREY).all()


def test_palette_is_fixed_per_class_and_spreads_neighbours():
    assert color_of(3) == color_of(3 + len(PALETTE))
    assert len(set(PALETTE)) == len(PALETTE)
    assert {color_of(i) for i in range(len(PALETTE))} == set(PALETTE)  # every colour used
    horse, cow = np.array(color_of(17)), np.array(color_of(19))  # COCO neighbours
    assert np.abs(horse - cow).sum() > 150


def test_box_in_class_colour_with_caption_above():
    image = blank()
    d = make_detections([(50, 100, 150, 180)], [0.87], [5], data={"class_name": ["dog"]})
    out = annotate(image, d)
    assert tuple(out[140, 50]) == color_of(5)  # left edge, halfway down
    assert tuple(out[180, 100]) == color_of(5)  # bottom edge
    assert changed(image, out)[80:100, 50:100].any()  # caption box above the top-left corner
    assert not changed(image, out)[120:170, 60:140].any()  # inside stays clear
    assert not changed(image, out)[:, 200:].any()  # nothing elsewhere


def test_caption_moves_inside_when_box_touches_the_top():
    out = annotate(blank(), make_detections([(50, 0, 150, 100)], class_id=[2]))
    assert tuple(out[1, 51]) == color_of(2)  # filled caption background hangs below y=0


def test_landmarks_are_dots():
    landmarks = np.array([[[100, 120], [130, 120], [115, 140], [105, 160], [125, 160]]], np.float32)
    d = make_detections([(80, 100, 150, 180)], landmarks=landmarks)
    out = annotate(blank(), d, task="faces")
    for x, y in landmarks[0].astype(int):
        assert tuple(out[y, x]) == color_of(0)


def test_mask_is_a_translucent_overlay():
    mask = np.zeros((1, 200, 300), bool)
    mask[0, 60:140, 100:200] = True
    d = make_detections([(100, 60, 200, 140)], class_id=[8], mask=mask)
    out = annotate(blank(), d, task="segmentation").astype(int)
    inside = out[100, 150]
    expected = 0.45 * np.array(color_of(8)) + 0.55 * GREY
    np.testing.assert_allclose(inside, expected, atol=1.5)  # tinted, not painted over
    assert (out[150:, :] == GREY).all()  # outside the mask and its box: untouched


def test_classification_rows_are_listed_top_left_not_framed():
    d = make_detections(
        [(0, 0, 300, 200)] * 3,
        [0.9, 0.05, 0.01],
        [1, 2, 3],
        data={"class_name": ["macaw", "lorikeet", "bee eater"]},
    )
    out = annotate(blank(), d, task="classification")
    touched = changed(blank(), out)
    assert tuple(out[2, 2]) == color_of(1)  # first caption at the very top-left
    assert touched[:, :10].any(axis=1)[:40].all()  # three stacked captions
    assert not touched[:, 290:].any()
    assert not touched[190:, :].any()


@pytest.mark.parametrize(
    ("data", "labels"),
    [
        # names from the detections themselves
        pytest.param({"class_name": ["cat"]}, None, id="class-name"),
        # names from a labels list
        pytest.param({}, ["background", "cat"], id="labels"),
        # no names anywhere: the id is shown
        pytest.param({}, None, id="id-only"),
    ],
)
def test_caption_sources(data, labels):
    d = make_detections([(50, 100, 150, 180)], class_id=[1], data=data)
    out = annotate(blank(), d, labels)
    assert changed(blank(), out)[80:100, 50:100].any()


@pytest.mark.parametrize(
    ("task", "kinds"),
    [
        pytest.param("detection", [BoxAnnotator, LabelAnnotator], id="detection"),
        pytest.param("faces", [BoxAnnotator, LandmarkAnnotator, LabelAnnotator], id="faces"),
        pytest.param(
            "segmentation", [MaskAnnotator, BoxAnnotator, LabelAnnotator], id="segmentation"
        ),
        pytest.param("classification", [ClassListAnnotator], id="classification"),
    ],
)
def test_annotators_are_chosen_by_task(task, kinds):
    assert [type(a) for a in annotators_for(task)] == kinds


def test_lines_and_text_grow_with_the_image():
    thumb, full_hd, uhd = (
        Style.for_image(120, 160),
        Style.for_image(1080, 1920),
        Style.for_image(2160, 3840),
    )
    assert thumb.line == 2  # never a faint 1-pixel box
    assert thumb.line <= full_hd.line < uhd.line
    assert thumb.font_scale < full_hd.font_scale < uhd.font_scale
    assert thumb.text <= full_hd.text <= uhd.text


def assert_tags_apart(rects, w, h):
    for i, a in enumerate(rects):
        assert 0 <= a[0] < a[2] <= w, a  # inside the image
        assert 0 <= a[1] < a[3] <= h, a
        for b in rects[i + 1 :]:
            apart = a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
            assert apart, (a, b)


@pytest.mark.parametrize(
    "boxes",
    [
        # four boxes from one corner (the horses case: "cow" under "horse")
        pytest.param(
            [(50, 60, 250, 180), (52, 61, 240, 170), (50, 60, 200, 150), (49, 58, 260, 190)],
            id="same-corner",
        ),
        # boxes at the top edge: the tags go inside, then stack
        pytest.param([(0, 0, 150, 100), (5, 0, 140, 90), (10, 2, 160, 120)], id="top-edge"),
        # a column of thin boxes one above the other (as many tags as the height holds)
        pytest.param([(20, y, 280, y + 8) for y in range(10, 190, 18)], id="column"),
    ],
)
def test_captions_never_overlap(boxes):
    d = make_detections(boxes, [0.9 - 0.01 * i for i in range(len(boxes))], list(range(len(boxes))))
    scene = Scene.of(blank(), d)
    assert_tags_apart(LabelAnnotator().layout(scene), 300, 200)


def test_real_horses_have_readable_separate_captions():
    from helpers import MODEL_DIR, read_image

    from framefleet.inference import load_model

    model = load_model("yolox-nano", model_dir=MODEL_DIR, download=False)
    image = read_image("darknet_horses.jpg")
    detections = model(image)
    names = detections.data["class_name"].tolist()
    assert names.count("horse") >= 3
    scene = Scene.of(image.copy(), detections, model.adapter.labels)
    rects = LabelAnnotator().layout(scene)
    assert_tags_apart(rects, image.shape[1], image.shape[0])
    out = model.annotate(image, detections)
    for rect, cid in zip(rects, detections.class_id.tolist(), strict=True):
        x1, y1 = rect[:2]
        assert tuple(out[y1 + 1, x1 + 1]) == color_of(cid)  # each tag visible in its class colour


def test_tracked_rows_name_their_track():
    d = make_detections(
        [(10, 40, 100, 120), (150, 40, 250, 120)],
        class_id=[2, 2],
        data={"class_name": ["car", "car"]},
    )
    d = d.with_tracker_id(np.array([7, -1]))
    assert Scene.of(blank(), d).captions == ["car #7 0.90", "car 0.90"]
