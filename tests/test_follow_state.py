"""The follow state of a `submit --follow` job in a real Redis: what `admit` counts, defers and
refuses, what a killed producer left unsent, the lag percentiles, and the option parsers."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import pytest

from framefleet.cli.streaming import parse_duration, parse_until
from framefleet.core.jobrecord import JobStatus
from framefleet.core.storage import StorageObject
from framefleet.state.follow import FollowStore, identity, percentile
from framefleet.state.jobs import JobStore


def make_job(job_store: JobStore, **limits: int) -> tuple[FollowStore, str]:
    follow = FollowStore(job_store)
    job_id = job_store.create("file:///in/", "file:///out/", "yolox-nano", params={"follow": True})
    follow.open(job_id, identity("file:///in/", "file:///out/", "yolox-nano"), 1.0, **limits)
    return follow, job_id


def obj(key: str, tag: str = "t1") -> StorageObject:
    return StorageObject(key, 10, tag, 1_700_000_000.0)


def test_admit_counts_new_keys_once_and_skips_what_was_seen(job_store: JobStore) -> None:
    follow, job_id = make_job(job_store)
    first = follow.admit(job_id, [obj("b.jpg"), obj("a.jpg")])
    again = follow.admit(job_id, [obj("a.jpg"), obj("b.jpg"), obj("c.jpg")])
    assert (first.keys, again.keys) == (["b.jpg", "a.jpg"], ["c.jpg"])
    assert job_store.get(job_id).total == 3
    assert follow.cursor(job_id) == "c.jpg"
    info = follow.get(job_id)
    assert info is not None
    assert (info.seen, info.rewrites, info.following) == (3, 0, True)
    # Counted but not yet sent: what a producer started again sends.
    assert follow.unsent(job_id) == ["a.jpg", "b.jpg", "c.jpg"]
    follow.sent(job_id, ["a.jpg", "b.jpg"])
    assert follow.unsent(job_id) == ["c.jpg"]


def test_a_rewrite_waits_for_the_earlier_outcome_then_runs_again(job_store: JobStore) -> None:
    follow, job_id = make_job(job_store)
    follow.admit(job_id, [obj("a.jpg", "v1"), obj("b.jpg", "v1")])
    # a.jpg rewritten while its first content is still in flight: deferred, not counted.
    early = follow.admit(job_id, [obj("a.jpg", "v2")])
    assert (early.keys, early.deferred) == ([], 1)
    job_store.record(job_id, "a.jpg", ok=True)
    job_store.record(job_id, "b.jpg", ok=True)
    later = follow.admit(job_id, [obj("a.jpg", "v2"), obj("b.jpg", "v1")])
    assert later.keys == ["a.jpg"]  # b.jpg untouched: not again
    record = job_store.get(job_id)
    assert (record.total, record.done) == (2, 1)  # a.jpg pending again, counted once in total
    assert (follow.is_redo(job_id, "a.jpg"), follow.is_redo(job_id, "b.jpg")) == (True, False)
    info = follow.get(job_id)
    assert info is not None
    assert (info.seen, info.rewrites) == (3, 1)


def test_max_items_caps_the_admission_and_close_refuses_more(job_store: JobStore) -> None:
    follow, job_id = make_job(job_store, max_items=2)
    capped = follow.admit(job_id, [obj("a.jpg"), obj("b.jpg"), obj("c.jpg")], max_items=2)
    assert (capped.keys, capped.capped) == (["a.jpg", "b.jpg"], True)
    assert follow.close(job_id, "--max-items 2 reached")
    assert not follow.close(job_id, "again")  # closed once
    refused = follow.admit(job_id, [obj("d.jpg")])
    assert (refused.keys, refused.closed) == ([], True)
    assert job_store.get(job_id).total == 2
    assert follow.find(identity("file:///in/", "file:///out/", "yolox-nano")) is None
    assert follow.sleep(job_id, 5.0)  # a closed job wakes its producer at once


def test_find_returns_only_a_job_that_still_follows(job_store: JobStore) -> None:
    follow, job_id = make_job(job_store)
    ident = identity("file:///in/", "file:///out/", "yolox-nano")
    assert follow.find(ident) == job_id
    job_store.stop(job_id, JobStatus.CANCELLED)
    assert follow.find(ident) is None
    assert not follow.is_open(job_id)


def test_lag_is_noted_once_per_outcome(job_store: JobStore) -> None:
    # The outcome's own record notes the lag of a following job's item, in the same script.
    follow, job_id = make_job(job_store)
    follow.admit(job_id, [obj("a.jpg")])
    job_store.record(job_id, "a.jpg", ok=True)
    job_store.record(job_id, "a.jpg", ok=True)  # a redelivered outcome adds nothing
    info = follow.get(job_id)
    assert info is not None
    assert info.lags == 1
    assert info.lag_p50_s is not None
    assert info.lag_p50_s > 0


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([4.0], 95, 4.0),  # one value is every percentile
        ([1.0, 2.0, 3.0], 50, 2.0),  # the middle one
        ([float(n) for n in range(1, 101)], 95, 95.05),  # interpolated
    ],
)
def test_percentile(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "expected", "raises"),
    [
        ("10s", 10.0, nullcontext()),
        ("500ms", 0.5, nullcontext()),
        ("2m", 120.0, nullcontext()),
        ("3", 3.0, nullcontext()),  # bare seconds
        ("soon", None, pytest.raises(ValueError, match="not a duration")),
    ],
)
def test_parse_duration(
    text: str, expected: float | None, raises: AbstractContextManager[object]
) -> None:
    with raises:
        assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "expected", "raises"),
    [
        ("30m", 1000.0 + 1800, nullcontext()),  # from now
        ("+1h", 1000.0 + 3600, nullcontext()),
        ("1970-01-01T01:00:00Z", 3600.0, nullcontext()),
        ("1970-01-01T01:00:00", 3600.0, nullcontext()),  # no zone: UTC
        ("tomorrow", None, pytest.raises(ValueError, match="neither a time")),
    ],
)
def test_parse_until(
    text: str, expected: float | None, raises: AbstractContextManager[object]
) -> None:
    with raises:
        assert parse_until(text, now=1000.0) == expected
