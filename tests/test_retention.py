"""Retention on a real Redis: a job's per-item keys expire FRAMEFLEET_JOB_TTL_DAYS after it ends
(done, cancelled, stopped by its failure budget), never while it runs or follows; its record and
counts stay; what reads per-item state afterwards says it expired; `jobs --purge` deletes ended
jobs now."""

from __future__ import annotations

import time

import pytest
from fleet import run_cli

from framefleet.core.errors import JobItemsExpired
from framefleet.core.jobrecord import JobStatus
from framefleet.core.settings import Settings
from framefleet.core.storage import StorageObject
from framefleet.state.control import JobControl
from framefleet.state.follow import FollowStore, identity
from framefleet.state.jobs import JobStore

HOUR_S = 3600
# What stays when a job ends: its record (class counts too), the finished token, the follow hash.
KEPT = {"", ":finished", ":follow", ":follow:wake"}


def store(redis_url: str, ttl_s: int) -> JobStore:
    return JobStore.from_url(redis_url, item_ttl_s=ttl_s)


def new_job(jobs: JobStore, items: int) -> str:
    job_id = jobs.create("file:///in/", "file:///out/", "yolox-nano")
    jobs.add_items(job_id, items, message_no=0)
    return job_id


def add_video(jobs: JobStore, job_id: str, item: str) -> None:
    """The keys a planned, half-done video leaves (as `VideoStore.plan` and `record` write them)."""
    base = f"{jobs.prefix}:job:{job_id}"
    jobs.client.zadd(f"{base}:videos", {item: time.time()})
    jobs.client.hset(f"{base}:video:{item}", mapping={"segments": 2, "state": "running"})
    jobs.client.sadd(f"{base}:video:{item}:done", 0)


def ttls(jobs: JobStore, job_id: str) -> dict[str, int]:
    """Every key of the job (suffix after the job hash's name) -> its TTL in seconds (-1: none)."""
    base = f"{jobs.prefix}:job:{job_id}"
    keys = sorted(jobs.client.scan_iter(match=f"{base}*"))
    return {key[len(base) :]: int(jobs.client.ttl(key)) for key in keys}


def test_per_item_keys_expire_when_the_job_completes_not_while_it_runs(redis_url: str) -> None:
    jobs = store(redis_url, HOUR_S)
    job_id = new_job(jobs, 3)
    add_video(jobs, job_id, "clip.mp4")
    jobs.finish_listing(job_id)
    jobs.record(job_id, "a.jpg", ok=True, classes={"dog": 1})
    jobs.record(job_id, "b.jpg", ok=False, reason={"error": "ImageDecodeError"})
    running = ttls(jobs, job_id)
    assert {":done", ":failed", ":counted", ":videos", ":video:clip.mp4:done"} <= running.keys()
    assert set(running.values()) == {-1}  # nothing expires while the job runs

    assert jobs.record(job_id, "clip.mp4", ok=True)  # the last outcome completes the job
    ended = ttls(jobs, job_id)
    assert {k for k, ttl in ended.items() if ttl == -1} == KEPT & ended.keys()
    assert all(0 < ttl <= HOUR_S for k, ttl in ended.items() if k not in KEPT)
    record = jobs.get(job_id)
    assert record.status is JobStatus.DONE
    assert record.items_expire_at == pytest.approx(record.finished_at + HOUR_S)
    assert list(jobs.failures(job_id)) == [("b.jpg", {"error": "ImageDecodeError"})]  # still kept


def test_cancel_and_the_failure_budget_set_the_expiry(redis_url: str) -> None:
    jobs = store(redis_url, HOUR_S)
    cancelled = new_job(jobs, 5)
    jobs.record(cancelled, "a.jpg", ok=True)
    assert jobs.cancel(cancelled)
    assert 0 < jobs.client.ttl(f"{jobs.prefix}:job:{cancelled}:done") <= HOUR_S
    assert 0 < jobs.client.ttl(f"{jobs.prefix}:job:{cancelled}:counted") <= HOUR_S

    stopped = new_job(jobs, 10)  # with a 50% failure budget, checked after 2 outcomes
    budget = '{"max_failure_rate": 0.5, "min_failure_sample": 2}'
    jobs.client.hset(f"{jobs.prefix}:job:{stopped}", "params", budget)
    assert not jobs.record(stopped, "a.jpg", ok=False, reason={"error": "ImageDecodeError"})
    # the record that breaks the budget stops the job, in the same script
    assert jobs.record(stopped, "b.jpg", ok=False, reason={"error": "ImageDecodeError"})
    assert jobs.get(stopped).status is JobStatus.FAILED
    assert 0 < jobs.client.ttl(f"{jobs.prefix}:job:{stopped}:failed") <= HOUR_S


def test_ttl_zero_keeps_per_item_keys_forever(redis_url: str) -> None:
    jobs = store(redis_url, 0)
    job_id = new_job(jobs, 1)
    jobs.finish_listing(job_id)
    assert jobs.record(job_id, "a.jpg", ok=True)
    assert set(ttls(jobs, job_id).values()) == {-1}
    assert jobs.get(job_id).items_expire_at is None


def test_a_following_job_never_expires_until_it_ends(redis_url: str) -> None:
    jobs = store(redis_url, HOUR_S)
    follow = FollowStore(jobs)
    job_id = jobs.create("file:///in/", "file:///out/", "yolox-nano", params={"follow": True})
    follow.open(job_id, identity("file:///in/", "file:///out/", "yolox-nano"), 1.0)
    objects = [StorageObject(f"{n}.jpg", 10, "t1", 1_700_000_000.0) for n in range(3)]
    assert len(follow.admit(job_id, objects).keys) == 3
    for obj in objects:  # every item counted so far has its outcome: the job still follows
        assert not jobs.record(job_id, obj.key, ok=True)
    assert not jobs.get(job_id).finished
    following = ttls(jobs, job_id)
    assert ":follow:seen" in following
    assert set(following.values()) == {-1}

    follow.close(job_id, "closed by the test")
    assert jobs.finish_listing(job_id)  # what the producer does once closed: the job ends
    assert 0 < jobs.client.ttl(f"{jobs.prefix}:job:{job_id}:follow:seen") <= HOUR_S
    assert jobs.client.ttl(f"{jobs.prefix}:job:{job_id}:follow") == -1


def test_retry_keeps_the_per_item_keys_again_until_the_job_ends(redis_url: str) -> None:
    jobs = store(redis_url, HOUR_S)
    job_id = new_job(jobs, 2)
    jobs.finish_listing(job_id)
    jobs.record(job_id, "a.jpg", ok=True)
    assert jobs.record(job_id, "b.jpg", ok=False, reason={"error": "TimeoutError"})
    assert JobControl(jobs).reopen(job_id) == ["b.jpg"]
    assert jobs.client.ttl(f"{jobs.prefix}:job:{job_id}:done") == -1
    assert jobs.get(job_id).items_expire_at is None
    assert jobs.record(job_id, "b.jpg", ok=True)
    record = jobs.get(job_id)
    assert (record.done, record.failed) == (2, 0)
    assert JobControl(jobs).reopen(job_id) == []  # nothing failed: it stays ended, and expiring
    assert 0 < jobs.client.ttl(f"{jobs.prefix}:job:{job_id}:done") <= HOUR_S
    record = jobs.get(job_id)
    assert (record.done, record.failed) == (2, 0)
    assert 0 < jobs.client.ttl(f"{jobs.prefix}:job:{job_id}:done") <= HOUR_S


def expired_job(jobs: JobStore) -> str:
    """A done job (1 success, 1 failure) whose per-item keys have expired (1 s retention)."""
    job_id = new_job(jobs, 2)
    jobs.finish_listing(job_id)
    jobs.record(job_id, "a.jpg", ok=True, classes={"dog": 2})
    assert jobs.record(job_id, "b.jpg", ok=False, reason={"error": "ImageDecodeError"})
    deadline = time.monotonic() + 5
    while jobs.client.exists(f"{jobs.prefix}:job:{job_id}:done"):
        assert time.monotonic() < deadline, "the done set did not expire"
        time.sleep(0.1)
    return job_id


def test_an_expired_job_keeps_its_counts_and_says_its_items_expired(redis_url: str) -> None:
    jobs = store(redis_url, 1)
    job_id = expired_job(jobs)
    record = jobs.get(job_id)
    assert (record.status, record.done, record.failed, record.classes) == (
        JobStatus.DONE,
        1,
        1,
        {"dog": 2},
    )
    assert record.items_expired()
    for read in (
        lambda: list(jobs.failures(job_id)),
        lambda: jobs.sample_done(job_id, 5),
        lambda: list(jobs.scan_done(job_id)),
    ):
        with pytest.raises(JobItemsExpired, match="submit the same input to the same output"):
            read()
    # A late redelivered outcome neither recreates the keys nor changes the counts.
    assert not jobs.record(job_id, "b.jpg", ok=True)
    assert not jobs.client.exists(f"{jobs.prefix}:job:{job_id}:done")
    assert (jobs.get(job_id).done, jobs.get(job_id).failed) == (1, 1)


def test_retry_and_status_of_an_expired_job_say_what_happened(
    redis_url: str, settings: Settings
) -> None:
    job_id = expired_job(store(redis_url, 1))
    retry = run_cli(settings, "retry", job_id)
    assert retry.returncode != 0
    assert "per-item state (done items, failures) expired" in retry.stderr
    assert "file:///out/_framefleet/failures.jsonl" in retry.stderr
    assert "FRAMEFLEET_JOB_TTL_DAYS" in retry.stderr

    status = run_cli(settings, "status", job_id)
    assert status.returncode == 0, status.stderr
    assert "expired from Redis" in status.stderr


def test_purge_deletes_ended_jobs_only(redis_url: str, settings: Settings) -> None:
    jobs = store(redis_url, HOUR_S)
    done = new_job(jobs, 1)
    add_video(jobs, done, "clip.mp4")
    jobs.finish_listing(done)
    assert jobs.record(done, "clip.mp4", ok=True)
    cancelled = new_job(jobs, 3)
    jobs.record(cancelled, "a.jpg", ok=True)
    jobs.cancel(cancelled)
    running = new_job(jobs, 2)
    jobs.finish_listing(running)
    jobs.record(running, "a.jpg", ok=True)
    before = ttls(jobs, running)

    assert jobs.purge(older_than_s=HOUR_S) == []  # they ended just now
    result = run_cli(settings, "jobs", "--purge", "--older-than", "0")
    assert result.returncode == 0, result.stderr
    assert "purged 2 jobs" in result.stderr
    assert done in result.stderr
    assert ttls(jobs, done) == {}
    assert ttls(jobs, cancelled) == {}
    assert ttls(jobs, running) == before
    assert [r.job_id for r in jobs.recent()] == [running]
    assert run_cli(settings, "jobs", "--purge").returncode == 2  # --older-than is required
