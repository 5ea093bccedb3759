"""Job state on a real Redis: exact counts, idempotent outcomes, completion decided once."""

from __future__ import annotations

import threading

import pytest

from framefleet.core.errors import BrokerError, JobNotFound
from framefleet.core.jobrecord import JobStatus
from framefleet.state.jobs import JobStore


def new_job(store: JobStore, items: int) -> str:
    job_id = store.create("mem://in/", "mem://out/", "yolox-nano", params={"batch_size": 4})
    store.add_items(job_id, items)
    return job_id


def test_lifecycle_counts_and_completion(job_store: JobStore) -> None:
    job_id = new_job(job_store, 3)
    assert job_store.get(job_id).status is JobStatus.LISTING
    assert not job_store.finish_listing(job_id)
    assert job_store.get(job_id).status is JobStatus.RUNNING

    assert not job_store.record(job_id, "a.jpg", ok=True, classes={"dog": 2})
    assert not job_store.record(job_id, "b.jpg", ok=False, reason={"error": "ImageDecodeError"})
    assert job_store.record(job_id, "c.jpg", ok=True, classes={"dog": 1, "car": 1})

    record = job_store.get(job_id)
    assert (record.total, record.done, record.failed, record.status) == (3, 2, 1, JobStatus.DONE)
    assert record.classes == {"dog": 3, "car": 1}
    assert record.finished_at is not None
    assert record.started_at is not None
    assert list(job_store.failures(job_id)) == [("b.jpg", {"error": "ImageDecodeError"})]


def test_redelivered_success_counts_once(job_store: JobStore) -> None:
    job_id = new_job(job_store, 3)
    job_store.finish_listing(job_id)
    job_store.record(job_id, "a.jpg", ok=True, classes={"dog": 1})
    job_store.record(job_id, "a.jpg", ok=True, classes={"dog": 1})  # a redelivered task
    job_store.record(job_id, "clip.mp4", ok=True, frames=41)
    job_store.record(job_id, "clip.mp4", ok=True, frames=41)
    record = job_store.get(job_id)
    assert (record.done, record.failed, record.classes) == (2, 0, {"dog": 1})
    assert record.frames == 42
    assert record.status is JobStatus.RUNNING


@pytest.mark.parametrize(
    ("outcomes", "done", "failed"),
    [
        # a later success replaces an earlier failure
        pytest.param([False, True], 1, 0, id="fail-then-ok"),
        # a late failure never replaces a success
        pytest.param([True, False], 1, 0, id="ok-then-fail"),
        # two failures of one item are one failure
        pytest.param([False, False], 0, 1, id="fail-twice"),
    ],
)
def test_outcome_precedence(
    job_store: JobStore, outcomes: list[bool], done: int, failed: int
) -> None:
    job_id = new_job(job_store, 2)
    for ok in outcomes:
        job_store.record(job_id, "a.jpg", ok=ok, reason=None if ok else {"error": "X"})
    record = job_store.get(job_id)
    assert (record.done, record.failed) == (done, failed)


def test_completion_reported_exactly_once_under_races(job_store: JobStore) -> None:
    job_id = new_job(job_store, 200)
    job_store.finish_listing(job_id)
    winners: list[str] = []

    def work(items: list[str]) -> None:
        for item in items:
            if job_store.record(job_id, item, ok=True):
                winners.append(item)

    items = [f"{i}.jpg" for i in range(200)]
    threads = [threading.Thread(target=work, args=(items[i::4] + items[:20],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert job_store.get(job_id).done == 200


def test_listing_finished_after_all_outcomes_completes_the_job(job_store: JobStore) -> None:
    job_id = new_job(job_store, 1)
    assert not job_store.record(job_id, "a.jpg", ok=True)  # listing still open
    assert job_store.finish_listing(job_id)
    assert job_store.get(job_id).status is JobStatus.DONE


def test_empty_job_completes_when_listing_ends(job_store: JobStore) -> None:
    job_id = new_job(job_store, 0)
    assert job_store.finish_listing(job_id)


def test_cancel_and_recent(job_store: JobStore) -> None:
    first, second = new_job(job_store, 1), new_job(job_store, 1)
    job_store.cancel(first)
    assert job_store.status(first) is JobStatus.CANCELLED
    assert [r.job_id for r in job_store.recent()] == [second, first]


def test_a_stopped_job_is_final_with_frozen_counts(job_store: JobStore) -> None:
    job_id = new_job(job_store, 4)
    job_store.record(job_id, "a.jpg", ok=True)
    job_store.record(job_id, "b.jpg", ok=False, reason={"error": "X"})
    assert job_store.cancel(job_id)
    frozen = job_store.get(job_id)
    assert (frozen.done, frozen.failed, frozen.cancelled, frozen.total) == (1, 1, 2, 4)
    assert not job_store.record(job_id, "c.jpg", ok=True)  # work in flight: not counted
    assert not job_store.cancel(job_id)  # a second cancel changes nothing
    job_store.fail(job_id, "listing broke")  # nor does a later failure
    assert job_store.get(job_id) == frozen
    assert frozen.to_json()["cancelled"] == 2


def test_a_done_job_cannot_be_cancelled(job_store: JobStore) -> None:
    job_id = new_job(job_store, 1)
    job_store.finish_listing(job_id)
    assert job_store.record(job_id, "a.jpg", ok=True)
    assert not job_store.cancel(job_id)
    record = job_store.get(job_id)
    assert (record.status, record.cancelled) == (JobStatus.DONE, 0)


def test_unknown_job_is_a_precise_error(job_store: JobStore) -> None:
    with pytest.raises(JobNotFound, match=r"no job 'nope'.*framefleet jobs"):
        job_store.get("nope")
    with pytest.raises(JobNotFound, match="no job 'nope'"):
        job_store.record("nope", "a.jpg", ok=True)


def test_unreachable_redis_names_the_url() -> None:
    with pytest.raises(BrokerError, match=r"127\.0\.0\.1:1/0.*redis-server"):
        JobStore.from_url("redis://127.0.0.1:1/0")
