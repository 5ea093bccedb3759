"""End to end with real parts: redis-server, SeaweedFS S3, `framefleet worker` processes, real
models on real images. Submissions go through the real CLI or the producer API."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from fleet import Fleet, run_cli, wait_for_job, wait_for_object
from helpers import MODEL_DIR

from framefleet.core.jobrecord import JobStatus
from framefleet.core.modelstore import ModelStore
from framefleet.core.outputs import annotated_key, report_key, result_key
from framefleet.core.results import Detections
from framefleet.core.settings import Settings
from framefleet.core.storage import Storage, open_storage
from framefleet.inference.imageio import decode_image
from framefleet.inference.models import load_adapter
from framefleet.queue import create_app
from framefleet.state.jobs import JobStore
from producer.submit import submit

pytestmark = pytest.mark.integration

GOOD_IMAGES = [
    "darknet_dog.jpg",
    "darknet_horses.jpg",
    "coral_cat_720p.jpg",
    "coral_grace_hopper.bmp",
]


def upload(storage: Storage, files: list[Path], prefix: str = "") -> list[str]:
    keys = []
    for path in files:
        key = f"{prefix}{path.name}"
        storage.write_bytes(key, path.read_bytes())
        keys.append(key)
    return keys


def assert_outputs_match_direct_run(
    src: Storage, dst: Storage, keys: list[str], model: str
) -> None:
    """Each input has its JSON and annotated image, and the JSON equals an in-process run."""
    from framefleet.core.registry import load_registry

    adapter = load_adapter(load_registry().get(model), ModelStore(MODEL_DIR, download=False))
    for key in keys:
        assert dst.exists(annotated_key(key)), f"no annotated output for {key}"
        annotated = decode_image(dst.read_bytes(annotated_key(key)), annotated_key(key))
        document = json.loads(dst.read_bytes(result_key(key)))
        image = decode_image(src.read_bytes(key), key)
        assert annotated.shape == image.shape
        assert document["source"] == src.uri_for(key)
        assert document["model"]["name"] == model
        assert (document["image"]["width"], document["image"]["height"]) == image.shape[1::-1]
        got = Detections.from_json(document["results"])
        want = adapter(image)
        assert got.class_id.tolist() == want.class_id.tolist(), key
        np.testing.assert_allclose(got.xyxy, want.xyxy, atol=0.05)
        np.testing.assert_allclose(got.confidence, want.confidence, atol=1e-3)


def test_s3_job_outputs_equal_direct_run(
    settings: Settings, fleet: Fleet, s3_server, media_images: list[Path], job_store: JobStore
) -> None:
    fleet.extra_env = s3_server.env()
    s3_server.create_bucket("photos")
    s3_server.create_bucket("results")
    src, dst = open_storage("s3://photos/2026/"), open_storage("s3://results/run1/")
    keys = upload(src, media_images[:6], prefix="batch-a/") + upload(
        src, media_images[6:], prefix="batch-b/"
    )
    fleet.start("w1")
    result = run_cli(
        settings,
        "submit",
        "s3://photos/2026/",
        "--out",
        "s3://results/run1/",
        "--wait",
        env=s3_server.env(),
    )
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.splitlines()[0].strip()
    record = job_store.get(job_id)
    assert (record.total, record.done, record.failed) == (len(keys), len(keys), 0)
    assert record.status is JobStatus.DONE
    assert_outputs_match_direct_run(src, dst, keys, "yolox-nano")
    summary = json.loads(wait_for_object(dst, report_key("summary.json")))
    assert summary["done"] == len(keys)
    assert summary["classes"]["dog"] >= 1
    assert "detections per class" in result.stdout
    assert f"({len(keys)} images and video frames done)" in result.stdout
    # The report page lands in S3 too, written by the worker that completed the job.
    deadline = time.monotonic() + 60
    while not dst.exists(report_key("report.html")):
        assert time.monotonic() < deadline, "no report.html in S3 60 s after the job"
        time.sleep(0.2)
    page = dst.read_bytes(report_key("report.html")).decode()
    assert f"framefleet job {job_id}" in page
    assert page.count('<img src="data:image/jpeg;base64,') == len(keys)


def test_local_folder_job(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore, media_images: list[Path]
) -> None:
    src_dir, out_dir = tmp_path / "in", tmp_path / "out"
    src = open_storage(str(src_dir))
    keys = upload(src, media_images[:3], prefix="a/b/")
    fleet.start("w1")
    done = submit(settings, create_app(settings), str(src_dir), str(out_dir), "yolox-nano")
    assert done.job_id is not None
    assert done.items == 3
    record = wait_for_job(job_store, done.job_id)
    assert (record.done, record.failed, record.status) == (3, 0, JobStatus.DONE)
    assert_outputs_match_direct_run(src, open_storage(str(out_dir)), keys, "yolox-nano")
    assert (out_dir / "a/b" / media_images[0].name).is_file()  # mirrored relative path


def test_bad_files_are_reported_with_exact_counts(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore, media_images: list[Path]
) -> None:
    src = open_storage(str(tmp_path / "in"))
    upload(src, media_images[:3])
    src.write_bytes("empty.jpg", b"")
    src.write_bytes("notes.jpg", b"this is a text file, not a JPEG\n")
    src.write_bytes("README.txt", b"not media: skipped, never enqueued")
    fleet.start("w1")
    done = submit(settings, create_app(settings), src.uri, str(tmp_path / "out"), "yolox-nano")
    assert (done.items, done.skipped) == (5, 1)
    record = wait_for_job(job_store, done.job_id or "")
    assert (record.total, record.done, record.failed) == (5, 3, 2)
    failures = dict(job_store.failures(record.job_id))
    assert set(failures) == {"empty.jpg", "notes.jpg"}
    assert failures["empty.jpg"]["error"] == "ImageDecodeError"
    assert "0 bytes" in failures["empty.jpg"]["message"]
    assert "empty.jpg" in failures["empty.jpg"]["message"]
    assert failures["notes.jpg"]["error"] == "ImageDecodeError"
    lines = wait_for_object(
        open_storage(str(tmp_path / "out")), report_key("failures.jsonl")
    ).splitlines()
    assert sorted(json.loads(line)["item"] for line in lines) == ["empty.jpg", "notes.jpg"]
    assert fleet.workers[0].process.poll() is None  # the worker survived


def test_two_workers_share_one_job(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore, media_images: list[Path]
) -> None:
    settings = settings.with_(batch_size=1)
    fleet.settings = settings
    src = open_storage(str(tmp_path / "in"))
    keys = upload(src, media_images) + upload(src, media_images, prefix="copy/")
    w1, w2 = fleet.start("alpha"), fleet.start("beta")
    done = submit(settings, create_app(settings), src.uri, str(tmp_path / "out"), "yolox-nano")
    record = wait_for_job(job_store, done.job_id or "")
    assert (record.done, record.failed) == (len(keys), 0)
    dst = open_storage(str(tmp_path / "out"))
    producers = {json.loads(dst.read_bytes(result_key(k)))["worker"] for k in keys}
    assert len(producers) == 2, producers  # both worker processes took part
    for worker in (w1, w2):
        assert "framefleet.image_batch" in worker.log()
        assert "succeeded" in worker.log()


def test_status_counts_while_running_and_at_end(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore, media_images: list[Path]
) -> None:
    src = open_storage(str(tmp_path / "in"))
    keys = upload(src, media_images[:5])
    done = submit(settings, create_app(settings), src.uri, str(tmp_path / "out"), "yolox-nano")
    job_id = done.job_id or ""
    before = json.loads(run_cli(settings, "status", job_id, "--json").stdout)  # no worker yet
    assert (before["status"], before["total"], before["done"], before["failed"]) == (
        "running",
        5,
        0,
        0,
    )
    fleet.start("w1")
    wait_for_job(job_store, job_id)
    after = run_cli(settings, "status", job_id, "--json")
    assert after.returncode == 0, after.stderr
    final = json.loads(after.stdout)
    assert (final["status"], final["total"], final["done"], final["failed"]) == (
        "done",
        len(keys),
        5,
        0,
    )
    listing = run_cli(settings, "jobs").stdout
    assert job_id in listing
    assert "done" in listing


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        # a model the registry does not know: exit 3, the known names listed
        pytest.param(["--model", "nope"], 3, "known models: deeplab-v3", id="unknown-model"),
        # an input folder that does not exist: exit 4, the path named
        pytest.param(
            ["--input", "/nonexistent/photos"],
            4,
            "input folder /nonexistent/photos does not exist",
            id="missing-input",
        ),
        # a file that does not exist is called a file (issue 30, item 10)
        pytest.param(
            ["--input", "/nonexistent/photo.jpg"],
            4,
            "input file /nonexistent/photo.jpg does not exist",
            id="missing-file",
        ),
    ],
)
def test_submit_errors_are_precise(
    settings: Settings, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    opts = dict(zip(args[::2], args[1::2], strict=True))
    input_uri = opts.pop("--input", str(tmp_path))
    flat = [x for kv in opts.items() for x in kv]
    result = run_cli(settings, "submit", input_uri, "--out", str(tmp_path / "out"), *flat)
    assert result.returncode == code, result.stderr
    assert message in result.stderr


def test_unreachable_redis_exit_code(settings: Settings, tmp_path: Path) -> None:
    result = run_cli(settings.with_(redis_url="redis://127.0.0.1:1/0"), "jobs")
    assert result.returncode == 5
    assert "127.0.0.1:1" in result.stderr
    assert "FRAMEFLEET_REDIS_URL" in result.stderr


def test_dry_run_lists_without_enqueuing(
    settings: Settings, tmp_path: Path, job_store: JobStore, media_images: list[Path]
) -> None:
    src = open_storage(str(tmp_path / "in"))
    upload(src, media_images[:2])
    src.write_bytes("clip.mp4", b"x")
    result = run_cli(settings, "submit", src.uri, "--out", str(tmp_path / "out"), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "video  clip.mp4" in result.stdout
    assert media_images[0].name in result.stdout
    assert "would submit 3 items" in result.stderr
    assert job_store.recent() == []
