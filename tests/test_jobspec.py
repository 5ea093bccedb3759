"""The job spec: round trips, params stored before the spec was versioned, precise refusals, and
the one way a job's messages are made from it."""

from __future__ import annotations

import json
from contextlib import nullcontext as does_not_raise
from typing import Any

import pytest

from framefleet.core import defaults
from framefleet.core.errors import ConfigError, JobDecodeError
from framefleet.core.jobrecord import JobRecord, JobStatus
from framefleet.core.jobspec import SPEC_VERSION, JobSpec
from framefleet.core.messages import ImageBatch, VideoPlan
from framefleet.core.sampling import Sampling
from framefleet.core.settings import Settings

WHERE = {"input_uri": "s3://in/", "output_uri": "s3://out/", "model": "yolox-nano"}
PLAIN = JobSpec(**WHERE)
FULL = JobSpec(
    **WHERE,
    engine="onnxruntime",
    batch_size=3,
    segment_seconds=2.5,
    sampling=Sampling(every=2, fps=5.0, skip_static=True),
    force=True,
    max_failure_rate=0.2,
    min_failure_sample=6,
    follow=True,
)


def record(params: dict[str, Any]) -> JobRecord:
    return JobRecord(
        "j1",
        "s3://in/",
        "s3://out/",
        "yolox-nano",
        JobStatus.DONE,
        1,
        0,
        1,
        True,
        0.0,
        params=params,
    )


@pytest.mark.parametrize("spec", [PLAIN, FULL, JobSpec(**WHERE, fresh_output=True)])
def test_round_trip_is_plain_json(spec: JobSpec) -> None:
    assert JobSpec.decode(json.loads(json.dumps(spec.encode()))) == spec


def test_encoding_keeps_the_flat_keys_lua_and_workers_read() -> None:
    encoded = FULL.encode()
    assert encoded["v"] == SPEC_VERSION
    # the failure-budget script reads these two at the top level of the params JSON
    assert (encoded["max_failure_rate"], encoded["min_failure_sample"]) == (0.2, 6)
    # workers read these two flags
    assert (encoded["force"], encoded["fresh_output"]) == (True, False)
    assert encoded["sampling"] == {"every": 2, "fps": 5.0, "skip_static": True}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # a job from before params existed, or a test's bare job: every default
        pytest.param({}, PLAIN, id="empty"),
        # what submit wrote without options
        pytest.param({"batch_size": 8, "segment_seconds": 10.0, "sampling": {"every": 1, "fps": 0.0, "skip_static": False}}, PLAIN, id="submit-defaults"),
        # every option submit and follow could write, flags only when set
        pytest.param({"batch_size": 3, "segment_seconds": 2.5, "sampling": {"every": 2, "fps": 5.0, "skip_static": True}, "engine": "onnxruntime", "force": True, "max_failure_rate": 0.2, "min_failure_sample": 6, "follow": True}, FULL, id="submit-everything"),
        # an empty output at submit
        pytest.param({"batch_size": 8, "segment_seconds": 10, "fresh_output": True}, JobSpec(**WHERE, fresh_output=True), id="fresh-int-seconds"),
        # a follow job created by a test
        pytest.param({"follow": True}, JobSpec(**WHERE, follow=True), id="follow-only"),
        # keys this version does not know are ignored in old params
        pytest.param({"batch_size": 4, "note": "x"}, JobSpec(**WHERE, batch_size=4), id="unknown-key"),
    ],
)  # fmt: skip
def test_params_without_a_version_decode_with_defaults(
    params: dict[str, Any], expected: JobSpec
) -> None:
    assert JobSpec.of_record(record(params)) == expected


def test_a_stored_spec_is_read_from_its_record() -> None:
    assert JobSpec.of_record(record(FULL.encode())) == FULL


@pytest.mark.parametrize(
    ("data", "expectation"),
    [
        # not an object at all
        pytest.param(["v", 1], pytest.raises(JobDecodeError, match="JSON object, got list"), id="list"),
        # a spec written by another framefleet version
        pytest.param({**PLAIN.encode(), "v": 2}, pytest.raises(JobDecodeError, match="version 2 is not 1"), id="newer"),
        pytest.param({**PLAIN.encode(), "v": 0}, pytest.raises(JobDecodeError, match="version 0 is not 1"), id="zero"),
        pytest.param({**PLAIN.encode(), "v": "1"}, pytest.raises(JobDecodeError, match="version '1'"), id="string-version"),
        pytest.param({**PLAIN.encode(), "v": True}, pytest.raises(JobDecodeError, match="version True"), id="bool-version"),
        pytest.param({**PLAIN.encode(), "v": None}, pytest.raises(JobDecodeError, match="version None"), id="null-version"),
        # a versioned spec holds every field, and no other
        pytest.param({k: v for k, v in PLAIN.encode().items() if k != "segment_seconds"}, pytest.raises(JobDecodeError, match=r"missing \['segment_seconds'\]"), id="missing"),
        pytest.param({k: v for k, v in PLAIN.encode().items() if k != "input_uri"}, pytest.raises(JobDecodeError, match=r"missing \['input_uri'\]"), id="missing-input"),
        pytest.param({**PLAIN.encode(), "segment_secs": 2.0}, pytest.raises(JobDecodeError, match=r"unknown \['segment_secs'\]"), id="unknown"),
        pytest.param({k: v for k, v in PLAIN.encode().items() if k != "sampling"}, pytest.raises(JobDecodeError, match="'sampling' must be an object"), id="no-sampling"),
        pytest.param({**PLAIN.encode(), "sampling": {"every": 1}}, pytest.raises(JobDecodeError, match="sampling must have exactly"), id="partial-sampling"),
        # mistyped fields: bools are not counts, numbers are not flags, strings are not numbers
        pytest.param({**PLAIN.encode(), "batch_size": True}, pytest.raises(JobDecodeError, match="'batch_size' must be int"), id="bool-int"),
        pytest.param({**PLAIN.encode(), "force": 1}, pytest.raises(JobDecodeError, match="'force' must be bool"), id="int-bool"),
        pytest.param({**PLAIN.encode(), "segment_seconds": "10"}, pytest.raises(JobDecodeError, match="'segment_seconds' must be a number"), id="str-float"),
        pytest.param({"segment_seconds": "10"}, pytest.raises(JobDecodeError, match="'segment_seconds' must be a number"), id="old-str-float"),
        pytest.param({**PLAIN.encode(), "sampling": {"every": 1.5, "fps": 0, "skip_static": False}}, pytest.raises(JobDecodeError, match="'every' must be int"), id="float-every"),
        # values out of range
        pytest.param({**PLAIN.encode(), "segment_seconds": 0}, pytest.raises(JobDecodeError, match="segment_seconds must be positive"), id="zero-seconds"),
        pytest.param({**PLAIN.encode(), "batch_size": 0}, pytest.raises(JobDecodeError, match="batch_size must be at least 1"), id="zero-batch"),
        pytest.param({**PLAIN.encode(), "max_failure_rate": 0}, pytest.raises(JobDecodeError, match=r"max_failure_rate must be in \(0, 1\]"), id="zero-rate"),
        pytest.param({**PLAIN.encode(), "engine": "tensorrt"}, pytest.raises(JobDecodeError, match="unknown engine 'tensorrt'"), id="engine"),
        pytest.param({**PLAIN.encode(), "sampling": {"every": 0, "fps": 0, "skip_static": False}}, pytest.raises(JobDecodeError, match="--every must be at least 1"), id="every-zero"),
        pytest.param({"sampling": {"fps": -1}}, pytest.raises(JobDecodeError, match="--fps must be a positive"), id="old-negative-fps"),
        # an old spec without input, output and model: only its record can complete it
        pytest.param({"batch_size": 4}, pytest.raises(JobDecodeError, match="input_uri"), id="old-alone"),
        # integers stand for floats, as JSON writes them
        pytest.param({**PLAIN.encode(), "segment_seconds": 10, "max_failure_rate": 1}, does_not_raise(), id="int-floats"),
    ],
)  # fmt: skip
def test_decode_refuses_precisely(data: Any, expectation: Any) -> None:
    with expectation:
        JobSpec.decode(data)


@pytest.mark.parametrize(
    ("changes", "expectation"),
    [
        pytest.param({"batch_size": 0}, pytest.raises(ConfigError, match="batch_size"), id="batch"),
        pytest.param({"segment_seconds": -1.0}, pytest.raises(ConfigError, match="segment_seconds"), id="seconds"),
        pytest.param({"segment_seconds": float("inf")}, pytest.raises(ConfigError, match="segment_seconds"), id="inf-seconds"),
        pytest.param({"max_failure_rate": 1.5}, pytest.raises(ConfigError, match="max_failure_rate"), id="rate"),
        pytest.param({"min_failure_sample": 0}, pytest.raises(ConfigError, match="min_failure_sample"), id="sample"),
        pytest.param({"engine": "cv2.dnn"}, does_not_raise(), id="known-engine"),
    ],
)  # fmt: skip
def test_a_spec_checks_its_values(changes: dict[str, Any], expectation: Any) -> None:
    with expectation:
        JobSpec(**WHERE, **changes)


def test_from_settings_takes_batch_segments_and_budget() -> None:
    settings = Settings(
        batch_size=3, segment_seconds=2.5, max_failure_rate=0.2, min_failure_sample=6
    )
    sampling = Sampling(every=2, fps=5.0, skip_static=True)
    spec = JobSpec.from_settings(
        settings, *WHERE.values(), engine="onnxruntime", sampling=sampling, force=True, follow=True
    )
    assert spec == FULL
    assert JobSpec.from_settings(Settings(), *WHERE.values()) == PLAIN
    assert PLAIN.batch_size == defaults.BATCH_SIZE


@pytest.mark.parametrize(
    ("force", "fresh_output", "resume"),
    [
        (False, False, True),  # outputs may be there: look for them, count complete ones done
        (True, False, False),  # --force redoes everything
        (False, True, False),  # nothing was there at submit: nothing to look for
        (True, True, False),
    ],
)
def test_resume_unless_forced_or_fresh(force: bool, fresh_output: bool, resume: bool) -> None:
    assert JobSpec(**WHERE, force=force, fresh_output=fresh_output).resume is resume


def test_messages_carry_the_whole_spec() -> None:
    keys = ["1.jpg", "2.jpg", "v.mp4", "3.jpg", "4.png", "5.jpg", "x.txt", "w.gif"]
    planned = list(FULL.messages("j1", keys, first_no=7))
    assert [(m.kind, m.items, n) for m, n in planned] == [
        ("video_plan", ("v.mp4",), 1),  # a video goes at once, alone
        ("image_batch", ("1.jpg", "2.jpg", "3.jpg"), 3),
        ("video_plan", ("w.gif",), 1),
        ("image_batch", ("4.png", "5.jpg"), 2),  # the rest, at the end
    ]
    batches = [m for m, _ in planned if isinstance(m, ImageBatch)]
    assert [b.batch_no for b in batches] == [7, 8]
    assert all(
        (b.engine, b.model, b.input_uri) == ("onnxruntime", "yolox-nano", "s3://in/")
        for b in batches
    )
    plan = planned[0][0]
    assert isinstance(plan, VideoPlan)
    assert (plan.segment_seconds, plan.sampling, plan.engine, plan.output_uri) == (
        2.5,
        Sampling(every=2, fps=5.0, skip_static=True),
        "onnxruntime",
        "s3://out/",
    )
    assert VideoPlan.decode(plan.encode()) == plan  # a message the workers accept


def test_old_params_make_default_video_plans() -> None:
    ((plan, _),) = JobSpec.of_record(record({"batch_size": 2})).messages("j1", ["v.mp4"])
    assert isinstance(plan, VideoPlan)
    assert (plan.segment_seconds, plan.sampling) == (defaults.SEGMENT_SECONDS, Sampling())
