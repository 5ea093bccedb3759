"""Waiting for a job on a real Redis: `wait_for_change` and the `watch` loop wake on the job's
completion (a token the completing script pushes), not on a poll interval."""

from __future__ import annotations

import io
import threading
import time

import pytest
from rich.console import Console

from framefleet.core.jobrecord import JobStatus
from framefleet.state.jobs import JobStore
from producer.progress import watch


def running_job(store: JobStore, items: int) -> str:
    job_id = store.create("mem://in/", "mem://out/", "yolox-nano")
    store.add_items(job_id, items)
    store.finish_listing(job_id)
    return job_id


def later(delay_s: float, action) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(delay_s), action()), daemon=True)
    thread.start()
    return thread


def test_wait_times_out_while_running_and_wakes_on_completion(job_store: JobStore) -> None:
    job_id = running_job(job_store, 2)
    job_store.record(job_id, "a.jpg", ok=True)
    assert job_store.wait_for_change(job_id, 0.05) is False  # not finished: the timeout
    finished_at: list[float] = []
    later(
        0.3,
        lambda: (finished_at.append(time.monotonic()), job_store.record(job_id, "b.jpg", ok=True)),
    )
    assert job_store.wait_for_change(job_id, 10.0) is True
    woke = time.monotonic()
    # Wakes on the completion, far sooner than the 10 s timeout (generous bound: loaded CI).
    assert woke - finished_at[0] < 2.0
    # The token stays: every later waiter (a second `status --watch`) returns at once.
    assert job_store.wait_for_change(job_id, 10.0) is True


@pytest.mark.parametrize("end", ["cancel", "fail"])
def test_cancelled_or_failed_jobs_wake_waiters(job_store: JobStore, end: str) -> None:
    job_id = running_job(job_store, 5)
    later(
        0.2,
        (lambda: job_store.cancel(job_id))
        if end == "cancel"
        else (lambda: job_store.fail(job_id, "listing broke")),
    )
    assert job_store.wait_for_change(job_id, 10.0) is True
    assert job_store.get(job_id).finished


def test_two_waiters_both_wake(job_store: JobStore) -> None:
    job_id = running_job(job_store, 1)
    woke: list[bool] = []
    waiters = [
        threading.Thread(
            target=lambda: woke.append(JobStore(job_store.conn).wait_for_change(job_id, 10.0))
        )
        for _ in range(2)
    ]
    for thread in waiters:
        thread.start()
    time.sleep(0.2)
    job_store.record(job_id, "a.jpg", ok=True)
    for thread in waiters:
        thread.join(timeout=10)
    assert woke == [True, True]


def test_watch_to_a_log_returns_at_completion_not_at_its_redraw_interval(
    job_store: JobStore,
) -> None:
    # Not a terminal, and snapshots 5 s apart, yet the watch must end as soon as the job does
    # (the issue's `submit --wait` returned 4.4 s late on a 5 s poll).
    job_id = running_job(job_store, 1)
    out = io.StringIO()
    done_at: list[float] = []
    later(
        0.5, lambda: (done_at.append(time.monotonic()), job_store.record(job_id, "a.jpg", ok=True))
    )
    record = watch(job_store, job_id, console=Console(file=out), interval_s=5.0)
    returned = time.monotonic()
    assert record.status is JobStatus.DONE
    assert returned - done_at[0] < 2.0  # far below the 5 s redraw interval, even on a loaded CI
    assert "done" in out.getvalue().splitlines()[-1]
