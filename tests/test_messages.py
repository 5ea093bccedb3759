"""Queue messages: round trips and precise refusals of malformed messages."""

from __future__ import annotations

from contextlib import nullcontext as does_not_raise
from typing import Any

import pytest

from framefleet.core.errors import JobDecodeError
from framefleet.core.messages import ImageBatch, VideoSegment

BATCH = ImageBatch("j1", 3, "s3://in/", "s3://out/", "yolox-nano", ("a.jpg", "b/c.png"))
SEGMENT = VideoSegment("j1", 0, "s3://in/", "s3://out/", "yolox-nano", "v.mp4", 100, 200)


def test_round_trip_is_plain_json() -> None:
    import json

    for job in (BATCH, SEGMENT):
        message = json.loads(json.dumps(job.encode()))
        assert type(job).decode(message) == job
    assert BATCH.encode()["kind"] == "image_batch"
    assert BATCH.encode()["items"] == ["a.jpg", "b/c.png"]


def test_retry_keeps_everything_but_items_and_attempt() -> None:
    retry = BATCH.with_items(("b/c.png",), attempt=1)
    assert (retry.items, retry.attempt, retry.job_id, retry.batch_no) == (("b/c.png",), 1, "j1", 3)


@pytest.mark.parametrize(
    ("cls", "message", "expectation"),
    [
        # not an object at all
        pytest.param(ImageBatch, ["a.jpg"], pytest.raises(JobDecodeError, match="JSON object, got list"), id="list"),
        # a producer of another framefleet version
        pytest.param(ImageBatch, {**BATCH.encode(), "v": 99}, pytest.raises(JobDecodeError, match="version 99"), id="version"),
        # a video message sent to the image task
        pytest.param(ImageBatch, SEGMENT.encode(), pytest.raises(JobDecodeError, match="expected a 'image_batch'"), id="kind"),
        # a required field missing
        pytest.param(ImageBatch, {k: v for k, v in BATCH.encode().items() if k != "model"}, pytest.raises(JobDecodeError, match="lacks the field 'model'"), id="missing"),
        # a field of the wrong type (bools are not ints)
        pytest.param(ImageBatch, {**BATCH.encode(), "batch_no": True}, pytest.raises(JobDecodeError, match="'batch_no' must be int"), id="bool-int"),
        # an empty batch
        pytest.param(ImageBatch, {**BATCH.encode(), "items": []}, pytest.raises(JobDecodeError, match="non-empty list"), id="no-items"),
        # frames out of order
        pytest.param(VideoSegment, {**SEGMENT.encode(), "end_frame": 50}, pytest.raises(JobDecodeError, match=r"\[100, 50\)"), id="frames"),
        # optional fields may be left out
        pytest.param(VideoSegment, {k: v for k, v in SEGMENT.encode().items() if k not in ("attempt", "end_frame")}, does_not_raise(), id="defaults"),
    ],
)  # fmt: skip
def test_decode_refuses_precisely(cls: Any, message: Any, expectation: Any) -> None:
    with expectation:
        cls.decode(message)


@pytest.mark.parametrize(
    ("job", "shown"),
    [
        # what Flower shows: count, model, job and batch; never the URIs
        (BATCH, "2 images, yolox-nano, job j1, batch 3"),
        (
            BATCH.with_items(("a.jpg",), attempt=2),
            "1 image, yolox-nano, job j1, batch 3, attempt 2",
        ),
        (SEGMENT, "1 video, frames [100, 200), yolox-nano, job j1, segment 0"),
        (
            VideoSegment(
                "j1", 4, "s3://AKIA:secret@in/", "s3://out/?X-Amz-Signature=abc", "yunet", "v.mp4"
            ),
            "1 video, frames [0, end), yunet, job j1, segment 4",
        ),
    ],
)
def test_describe_names_the_work_without_uris(job: ImageBatch | VideoSegment, shown: str) -> None:
    assert job.describe() == shown
