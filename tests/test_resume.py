"""Failure budget, retry and resume, with real workers: a job with too many failures stops early
and drops the rest; `framefleet retry` reruns only the failed items; submitting again skips items
whose outputs are complete (`--force` redoes them); a producer killed mid-listing and a second
submission leave no item missing or counted twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from faults import assert_exactly_once
from fleet import REPO, Fleet, wait_for_job, wait_for_object
from test_e2e import run_cli

from framefleet.core.jobrecord import JobStatus
from framefleet.core.outputs import report_key, result_key
from framefleet.core.settings import Settings
from framefleet.core.storage import Storage, open_storage
from framefleet.state.jobs import JobStore

pytestmark = pytest.mark.integration


def created_at(dst: Storage, key: str) -> float:
    return float(json.loads(dst.read_bytes(result_key(key)))["created_at"])


def test_failure_budget_stops_the_job_and_drops_the_rest(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore, media_images: list[Path]
) -> None:
    # A wrong input for the model, simulated by files that are not images: 12 of them first.
    settings = settings.with_(batch_size=2)
    fleet.settings = settings
    src = open_storage(str(tmp_path / "in"))
    for n in range(12):
        src.write_bytes(f"a-bad-{n:02d}.jpg", b"<html>not an image</html>")
    for path in media_images:
        src.write_bytes(f"z-good-{path.name}", path.read_bytes())
    fleet.start("w1")
    result = run_cli(
        settings,
        "submit",
        src.uri,
        "--out",
        str(tmp_path / "out"),
        "--max-failure-rate",
        "0.5",
        "--min-failure-sample",
        "6",
        "--wait",
    )
    assert result.returncode == 1, result.stderr
    job_id = result.stdout.splitlines()[0].strip()
    record = job_store.get(job_id)
    assert record.status is JobStatus.FAILED
    assert "stopped early" in record.error
    assert "stopped early" in result.stdout + result.stderr
    assert record.failed >= 6
    assert record.processed < record.total  # the rest of the queue was dropped, not processed
    time.sleep(2)  # what was queued is skipped by the worker, not run
    assert job_store.get(job_id).processed == record.processed
    assert "skipped" in fleet.workers[0].log()
    assert_final_summary(job_store, job_id, tmp_path / "out", "failed", "stopped early")


def assert_final_summary(
    store: JobStore, job_id: str, out: Path, status: str, error: str
) -> dict[str, object]:
    """The stopped job's summary and report page exist, with the job's exact, frozen counts."""
    record = store.get(job_id)
    summary = json.loads(wait_for_object(open_storage(str(out)), report_key("summary.json")))
    assert (summary["status"], summary["total"]) == (status, record.total)
    assert (summary["done"], summary["failed"]) == (record.done, record.failed)
    assert summary["done"] + summary["failed"] + summary["cancelled"] == record.total
    assert error in summary["error"]
    assert (out / "_framefleet" / "failures.jsonl").read_text().count("\n") == record.failed
    wait_for_object(open_storage(str(out)), report_key("report.html"))
    return summary


def test_listing_that_fails_midway_ends_the_job_with_its_report(
    settings: Settings, tmp_path: Path, job_store: JobStore
) -> None:
    # 130 small images, then a folder nested deeper than PATH_MAX: the first chunk of messages
    # (128 images) is sent, then listing fails with a real OSError (ENAMETOOLONG).
    src = open_storage(str(tmp_path / "in"))
    for n in range(130):
        src.write_bytes(f"a{n:03d}.jpg", tiny_jpeg(n))
    fd = os.open(tmp_path / "in", os.O_RDONLY)
    for _ in range(18):  # 18 x 251 bytes > 4096
        os.mkdir("z" * 250, dir_fd=fd)
        deeper = os.open("z" * 250, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = deeper
    os.close(fd)
    out = tmp_path / "out"
    result = run_cli(settings.with_(batch_size=2), "submit", src.uri, "--out", str(out))
    assert result.returncode != 0
    assert "name too long" in result.stderr
    job_id = job_store.recent(1)[0].job_id
    record = job_store.get(job_id)
    assert (record.status, record.total, record.listed) == (JobStatus.FAILED, 128, False)
    summary = assert_final_summary(job_store, job_id, out, "failed", "listing stopped after 128")
    assert summary["cancelled"] == 128  # no worker ran: every sent item is without an outcome


def tiny_jpeg(seed: int) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def test_retry_reruns_only_the_failed_items(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore, media_images: list[Path]
) -> None:
    src = open_storage(str(tmp_path / "in"))
    dst = open_storage(str(tmp_path / "out"))
    keys = []
    for path in media_images[:4]:
        src.write_bytes(path.name, path.read_bytes())
        keys.append(path.name)
    src.write_bytes("late.jpg", b"still uploading")  # fails now, fixed before the retry
    keys.append("late.jpg")
    fleet.start("w1")
    first = run_cli(settings, "submit", src.uri, "--out", dst.uri, "--wait")
    assert first.returncode == 1, first.stderr
    job_id = first.stdout.splitlines()[0].strip()
    before = {k: created_at(dst, k) for k in keys[:4]}
    src.write_bytes("late.jpg", media_images[5].read_bytes())
    again = run_cli(settings, "retry", job_id, "--wait")
    assert again.returncode == 0, again.stderr
    assert "retrying 1 failed items" in again.stderr
    record = job_store.get(job_id)
    assert (record.status, record.total, record.done, record.failed) == (JobStatus.DONE, 5, 5, 0)
    assert_exactly_once(job_store, record, dst, keys)
    assert {k: created_at(dst, k) for k in keys[:4]} == before  # not redone
    nothing = run_cli(settings, "retry", job_id)
    assert nothing.returncode == 0
    assert "nothing to retry" in nothing.stderr


def test_resubmit_skips_complete_outputs_and_force_redoes_them(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore, media_images: list[Path]
) -> None:
    src = open_storage(str(tmp_path / "in"))
    dst = open_storage(str(tmp_path / "out"))
    keys = [p.name for p in media_images[:5]]
    for path in media_images[:5]:
        src.write_bytes(path.name, path.read_bytes())
    fleet.start("w1")
    args = ("submit", src.uri, "--out", dst.uri, "--wait")
    done = run_cli(settings, *args)
    assert done.returncode == 0, done.stderr
    # An empty output: its workers need not look for earlier outputs item by item.
    assert job_store.get(done.stdout.splitlines()[0].strip()).params.get("fresh_output") is True
    first = {k: created_at(dst, k) for k in keys}
    (tmp_path / "out" / result_key(keys[0])).unlink()  # incomplete: the JSON is missing
    second = run_cli(settings, *args)
    assert second.returncode == 0, second.stderr
    record = job_store.get(second.stdout.splitlines()[0].strip())
    assert record.params["fresh_output"] is False  # outputs there: each item is looked for
    assert (record.done, record.failed) == (5, 0)
    assert record.classes  # skipped items still count their detections
    now = {k: created_at(dst, k) for k in keys}
    assert now[keys[0]] > first[keys[0]]  # redone
    assert {k: now[k] for k in keys[1:]} == {k: first[k] for k in keys[1:]}  # skipped
    forced = run_cli(settings, *args, "--force")
    assert forced.returncode == 0, forced.stderr
    assert all(created_at(dst, k) > now[k] for k in keys)


STALLED_PRODUCER = """
import sys, time, pathlib
import producer.submit as submit
stalled, real_send, sends = pathlib.Path(sys.argv[1]), submit.send_jobs, []
def send_jobs(app, messages):
    sends.append(len(messages))
    if len(sends) == 2:  # the chunk's items are counted, its messages not yet sent
        stalled.touch()
        time.sleep(3600)
    real_send(app, messages)
submit.send_jobs = send_jobs
from framefleet.cli import main
sys.argv = ["framefleet", *sys.argv[2:]]
main()
"""
"""`framefleet` with the real producer, stalled inside its second send so the test kills it at
the worst moment (items counted, messages unsent) on any machine, fast or slow."""


def test_producer_killed_mid_listing_then_submitted_again(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore
) -> None:
    src = open_storage(str(tmp_path / "in"))
    rng = np.random.default_rng(1)
    keys = []
    for n in range(120):  # small images: the listing is long, the inference short
        image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        ok, data = cv2.imencode(".jpg", image)
        assert ok
        src.write_bytes(f"p{n:03d}.jpg", data.tobytes())
        keys.append(f"p{n:03d}.jpg")
    fleet.settings = settings = settings.with_(batch_size=1)  # 120 messages: two send chunks
    fleet.start("w1")
    out = str(tmp_path / "out")
    stalled = tmp_path / "stalled"
    with (tmp_path / "producer.err").open("wb") as err:
        producer = subprocess.Popen(
            [sys.executable, "-c", STALLED_PRODUCER, str(stalled), "submit", src.uri, "--out", out],
            env=fleet.env(),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=err,
        )
    try:
        assert producer.stdout is not None
        with producer.stdout:
            first_id = producer.stdout.readline().decode().strip()
        deadline = time.monotonic() + 60
        while not stalled.exists():
            assert producer.poll() is None, (tmp_path / "producer.err").read_text()
            assert time.monotonic() < deadline, (tmp_path / "producer.err").read_text()
            time.sleep(0.02)
    finally:  # killed at the stall, or if the test fails first: never left sleeping
        producer.kill()
        producer.wait()
    orphan = job_store.get(first_id)
    assert (orphan.listed, orphan.total) == (False, 120), orphan  # counted, half never sent
    listed = run_cli(settings, "jobs").stdout
    assert f"{first_id}  listing (producer gone)" in listed, listed
    again = run_cli(settings, "submit", src.uri, "--out", out)
    assert again.returncode == 0, again.stderr
    second_id = again.stdout.splitlines()[0].strip()
    # The orphan is closed by the resubmission, with a reason naming the job that took over.
    closed = job_store.get(first_id)
    assert closed.status is JobStatus.CANCELLED
    assert "producer stopped while listing" in closed.error
    assert f"superseded by job {second_id}" in closed.error
    assert closed.done + closed.failed + closed.cancelled == closed.total
    assert f"closed job {first_id}" in again.stderr
    record = wait_for_job(job_store, second_id, timeout_s=240)
    assert (record.status, record.total, record.done, record.failed) == (
        JobStatus.DONE,
        120,
        120,
        0,
    )
    assert_exactly_once(job_store, record, open_storage(out), keys)
