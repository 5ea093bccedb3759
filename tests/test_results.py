"""Detections: shape checks, indexing, merge, JSON round trip (with mask RLE)."""

from __future__ import annotations

import json
from contextlib import nullcontext as does_not_raise

import numpy as np
import pytest
from helpers import make_detections

from framefleet.core.results import Detections, rle_decode, rle_encode

BOXES = [(0, 0, 10, 10), (5, 5, 20, 20), (30, 30, 40, 50)]


@pytest.mark.parametrize(
    ("kwargs", "expectation"),
    [
        # well-formed rows
        pytest.param({}, does_not_raise(), id="valid"),
        # boxes need four numbers
        pytest.param(
            {"xyxy": np.zeros((3, 5))},
            pytest.raises(ValueError, match=r"xyxy must be N×4, got shape \(3, 5\)"),
            id="xyxy-5-wide",
        ),
        # one confidence per box
        pytest.param(
            {"confidence": np.zeros(2)},
            pytest.raises(ValueError, match=r"confidence must have shape \(3,\).*got \(2,\)"),
            id="confidence-short",
        ),
        # one class id per box
        pytest.param(
            {"class_id": np.zeros(4)},
            pytest.raises(ValueError, match=r"class_id must have shape \(3,\)"),
            id="class-id-long",
        ),
        # landmarks are N×K×2
        pytest.param(
            {"landmarks": np.zeros((3, 5, 3))},
            pytest.raises(ValueError, match=r"landmarks must be 3×K×2"),
            id="landmarks-3d",
        ),
        # N×5×2 landmarks are fine
        pytest.param({"landmarks": np.zeros((3, 5, 2))}, does_not_raise(), id="landmarks-ok"),
        # masks are N×H×W
        pytest.param(
            {"mask": np.zeros((2, 4, 4))},
            pytest.raises(ValueError, match=r"mask must be 3×H×W, got shape \(2, 4, 4\)"),
            id="mask-count",
        ),
        # every data array has one entry per row
        pytest.param(
            {"data": {"class_name": np.array(["a"])}},
            pytest.raises(ValueError, match=r"data\['class_name'\] must have length 3, got 1"),
            id="data-length",
        ),
    ],
)
def test_shape_checks(kwargs, expectation):
    fields = {
        "xyxy": np.array(BOXES, np.float32),
        "confidence": np.array([0.9, 0.8, 0.7]),
        "class_id": np.array([1, 2, 3]),
        **kwargs,
    }
    with expectation:
        Detections(**fields)


def test_dtypes_are_normalised_and_empty_is_n_by_4():
    d = Detections(xyxy=[[1, 2, 3, 4]], confidence=[1], class_id=[2.0])
    assert (d.xyxy.dtype, d.confidence.dtype, d.class_id.dtype) == (
        np.float32,
        np.float32,
        np.int32,
    )
    empty = Detections(xyxy=[], confidence=[], class_id=[])
    assert empty.xyxy.shape == (0, 4)
    assert len(empty) == 0 == len(Detections.empty())


@pytest.mark.parametrize(
    ("index", "ids"),
    [
        # boolean mask keeps the True rows
        pytest.param(np.array([True, False, True]), [1, 3], id="bool-mask"),
        # an int keeps one row, still a Detections
        pytest.param(1, [2], id="int"),
        # a slice
        pytest.param(slice(1, None), [2, 3], id="slice"),
        # an index list, reordering
        pytest.param([2, 0], [3, 1], id="list"),
        # an all-False mask leaves an empty Detections
        pytest.param(np.array([False] * 3), [], id="none"),
    ],
)
def test_indexing_keeps_every_field_aligned(index, ids):
    d = make_detections(
        BOXES,
        [0.9, 0.8, 0.7],
        [1, 2, 3],
        landmarks=np.arange(3 * 5 * 2, dtype=np.float32).reshape(3, 5, 2),
        mask=np.stack([np.full((4, 4), i == 1) for i in range(3)]),
        data={"class_name": ["a", "b", "c"]},
    )
    sub = d[index]
    assert sub.class_id.tolist() == ids
    assert sub.data["class_name"].tolist() == [" abc"[i] for i in ids]
    assert sub.landmarks is not None
    assert sub.landmarks.shape == (len(ids), 5, 2)
    assert sub.mask is not None
    assert [bool(m.any()) for m in sub.mask] == [i == 2 for i in ids]


def test_merge():
    a = make_detections(BOXES[:2], class_id=[1, 2], data={"class_name": ["a", "b"]})
    b = make_detections(BOXES[2:], class_id=[3], data={"class_name": ["c"]})
    merged = Detections.merge([a, Detections.empty(), b])
    assert merged.class_id.tolist() == [1, 2, 3]
    assert merged.data["class_name"].tolist() == ["a", "b", "c"]
    assert len(Detections.merge([])) == 0
    assert Detections.merge([a]) is a


def test_merge_drops_optional_fields_not_everywhere_and_refuses_mixed_data():
    with_lm = make_detections(BOXES[:1], landmarks=np.zeros((1, 5, 2)))
    without = make_detections(BOXES[1:2])
    assert Detections.merge([with_lm, without]).landmarks is None
    named = make_detections(BOXES[:1], data={"class_name": ["a"]})
    with pytest.raises(ValueError, match="data keys differ"):
        Detections.merge([named, without])


@pytest.mark.parametrize(
    ("mask", "counts"),
    [
        # column-major runs, starting with zeros
        pytest.param([[0, 1], [0, 1]], [2, 2], id="right-column"),
        # a mask starting with a 1 gets a leading zero-length run
        pytest.param([[1, 0], [1, 0]], [0, 2, 2], id="starts-with-one"),
        pytest.param([[0, 0], [0, 0]], [4], id="empty"),
        pytest.param([[1, 1], [1, 1]], [0, 4], id="full"),
    ],
)
def test_rle(mask, counts):
    m = np.array(mask, bool)
    rle = rle_encode(m)
    assert rle == {"size": [2, 2], "counts": counts}
    assert (rle_decode(rle) == m).all()


def test_rle_decode_rejects_wrong_total():
    with pytest.raises(ValueError, match=r"RLE counts sum to 3, expected 2×2=4"):
        rle_decode({"size": [2, 2], "counts": [1, 2]})


def test_json_round_trip_with_masks_and_landmarks():
    rng = np.random.default_rng(1)
    d = make_detections(
        BOXES,
        [0.91234, 0.8, 0.7],
        [1, 2, 3],
        landmarks=rng.uniform(0, 50, (3, 5, 2)).astype(np.float32),
        mask=rng.random((3, 7, 9)) > 0.5,
        data={"class_name": ["cat", "dog", "car"]},
    )
    text = json.dumps(d.to_json())  # plain JSON, no numpy types left
    back = Detections.from_json(json.loads(text))
    np.testing.assert_allclose(back.xyxy, d.xyxy)
    np.testing.assert_allclose(back.confidence, np.round(d.confidence, 4), rtol=1e-6)
    assert back.class_id.tolist() == [1, 2, 3]
    assert back.mask is not None
    assert d.mask is not None
    assert (back.mask == d.mask).all()
    assert back.landmarks is not None
    assert d.landmarks is not None
    np.testing.assert_allclose(back.landmarks, d.landmarks, atol=0.006)
    assert back.data["class_name"].tolist() == ["cat", "dog", "car"]


def test_json_round_trip_empty():
    back = Detections.from_json(json.loads(json.dumps(Detections.empty().to_json())))
    assert len(back) == 0
    assert back.mask is None
    assert back.landmarks is None
