"""The other ways people run framefleet: plain `celery -A workers.app worker` (solo pool), Flower,
and video inputs, each with real processes."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import pytest
from fleet import REPO, Fleet, cli, wait_for_job
from helpers import MEDIA_DIR

from framefleet.core.outputs import annotated_key, result_key
from framefleet.core.settings import Settings
from framefleet.core.storage import open_storage
from framefleet.queue import create_app
from framefleet.services.ports import free_port
from framefleet.services.processes import WORKER_READY, LoggedProcess
from framefleet.state.jobs import JobStore
from producer.submit import submit

pytestmark = pytest.mark.integration

SHORT_CLIP = MEDIA_DIR / "video" / "parking_lot_person_bicycle_car_480x270_mp4v.mp4"


def test_plain_celery_worker_with_solo_pool(
    settings: Settings, tmp_path: Path, job_store: JobStore, media_images: list[Path]
) -> None:
    # Settings come from FRAMEFLEET_* variables; the model is loaded by worker_process_init,
    # which Celery also sends in the solo pool.
    fleet = Fleet(settings.with_(worker_models=("yunet",)), tmp_path)
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.app",
        "worker",
        "--pool=solo",
        "--hostname=plain@%h",
        "--loglevel=INFO",
    ]
    worker = LoggedProcess("plain celery", cmd, fleet.env(), tmp_path / "celery.log", cwd=REPO)
    try:
        worker.wait_for(WORKER_READY, timeout_s=120)
        src = open_storage(str(tmp_path / "in"))
        src.write_bytes("faces.jpg", (MEDIA_DIR / "images" / "coral_face.jpg").read_bytes())
        done = submit(settings, create_app(settings), src.uri, str(tmp_path / "out"), "yunet")
        record = wait_for_job(job_store, done.job_id or "")
        assert (record.done, record.failed) == (1, 0)
        document = json.loads(
            open_storage(str(tmp_path / "out")).read_bytes(result_key("faces.jpg"))
        )
        assert len(document["results"]["class_id"]) == 4  # four faces
        assert "loaded model yunet" in worker.log()
    finally:
        worker.stop()


def test_flower_serves_the_fleet(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    cmd = cli("flower", "--port", str(port))
    flower = LoggedProcess("flower", cmd, Fleet(settings, tmp_path).env(), tmp_path / "flower.log")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=5) as r:
                    assert r.read() == b"OK"
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/workers", timeout=5) as r:
                    assert b"Flower" in r.read()
                    break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or flower.process.poll() is not None:
                    raise AssertionError(f"Flower did not answer:\n{flower.log()}") from None
                time.sleep(0.5)
    finally:
        flower.stop()
    with pytest.raises(ProcessLookupError):  # nothing of Flower outlives the stop
        os.killpg(flower.pid, 0)


def test_video_and_unreadable_video(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore
) -> None:
    src = open_storage(str(tmp_path / "in"))
    src.write_bytes("clips/parking.mp4", SHORT_CLIP.read_bytes())
    src.write_bytes("clips/broken.mp4", b"not a video at all")
    fleet.start("w1")
    done = submit(settings, create_app(settings), src.uri, str(tmp_path / "out"), "yolox-nano")
    record = wait_for_job(job_store, done.job_id or "")
    assert (record.total, record.done, record.failed) == (2, 1, 1)
    assert record.frames == 41  # images/s counts every video frame

    out = tmp_path / "out"
    document = json.loads((out / result_key("clips/parking.mp4")).read_text())
    assert document["kind"] == "video"
    frames = [json.loads(line) for line in (out / document["frames_file"]).read_text().splitlines()]
    assert [f["frame"] for f in frames] == list(range(41))
    assert any("car" in f["results"]["data"]["class_name"] for f in frames)
    annotated = cv2.VideoCapture(str(out / annotated_key("clips/parking.mp4", video=True)))
    assert int(annotated.get(cv2.CAP_PROP_FRAME_COUNT)) == 41
    annotated.release()

    reason = dict(job_store.failures(record.job_id))["clips/broken.mp4"]
    assert reason["error"] == "VideoOpenError"
    assert "broken.mp4" in reason["message"]
