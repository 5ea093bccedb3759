"""annotate(): pure, deterministic colours, and each kind of row drawn where it belongs."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_detections

from framefleet.core.results import Detections
from framefleet.inference.annotate import PALETTE, annotate, color_of

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


def test_palette_is_fixed_per_class():
    assert color_of(3) == PALETTE[3] == color_of(3 + len(PALETTE))
    assert len(set(PALETTE)) == len(PALETTE)


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
    out = annotate(blank(), d)
    for x, y in landmarks[0].astype(int):
        assert tuple(out[y, x]) == color_of(0)


def test_mask_is_a_translucent_overlay():
    mask = np.zeros((1, 200, 300), bool)
    mask[0, 60:140, 100:200] = True
    d = make_detections([(100, 60, 200, 140)], class_id=[8], mask=mask)
    out = annotate(blank(), d).astype(int)
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
    out = annotate(blank(), d)
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
