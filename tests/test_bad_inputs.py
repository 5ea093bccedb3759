"""Every bad or unusual input of issue 7 through one real worker process: each item ends with
exactly one result or exactly one failure whose message names the file and the cause, and the
worker lives on. Inputs are built at test time (tests/badmedia.py)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import badmedia
import cv2
import numpy as np
import pytest
from fleet import Fleet, wait_for_job
from helpers import MODEL_DIR, iou
from kombu import Connection
from test_e2e import run_cli

from framefleet.core.jobrecord import JobRecord
from framefleet.core.messages import ImageBatch
from framefleet.core.modelstore import ModelStore
from framefleet.core.outputs import annotated_key, frames_key, result_key
from framefleet.core.registry import load_registry
from framefleet.core.settings import Settings
from framefleet.core.storage import LocalStorage, open_storage
from framefleet.inference.imageio import decode_image
from framefleet.inference.models import load_adapter
from framefleet.queue import TASK_IMAGE_BATCH, create_app, queue_name
from framefleet.state.jobs import JobStore
from producer.submit import submit

pytestmark = pytest.mark.integration

MAX_PIXELS = 60_000_000
"""The worker's pixel limit in this test (FRAMEFLEET_MAX_PIXELS): the 48 MP photo passes, the
900 MP bomb does not."""

# item -> (error class, words its message must hold besides the item's name); None: processed.
EXPECTED_FAILURES: dict[str, tuple[str, list[str]]] = {
    "zero-byte.jpg": ("ImageDecodeError", ["0 bytes", "empty upload"]),
    "truncated.jpg": ("ImageDecodeError", ["looks like JPEG", "truncated or corrupt", "upload"]),
    "truncated.png": ("ImageDecodeError", ["looks like PNG", "truncated or corrupt", "upload"]),
    "notes.jpg": ("ImageDecodeError", ["not an image format", "plain text"]),
    "error-page.jpg": ("ImageDecodeError", ["not an image format", "HTML"]),
    "bomb.png": ("ImageDecodeError", ["30000×30000", "above the 60.0 MP limit", "max_pixels"]),
    "videos/corrupt.mp4": ("VideoOpenError", ["cannot read", "as a video", "corrupt"]),
    "videos/truncated.mp4": ("VideoOpenError", ["header claims 1394 frames", "truncated"]),
    "videos/zero-frames.avi": ("VideoOpenError", ["no frame", "nothing to process"]),
}
PROCESSED = [
    "16-bit.png",
    "grayscale.jpg",
    "rgba.png",
    "cmyk.jpg",
    "exif-rotated.jpg",
    "gif-named-as.jpg",  # an animated GIF under an image name: its first frame
    "multipage.tiff",  # its first page
    "huge-48mp.jpg",
    "with space/my photo.jpg",
    "ünïcødé/写真 1.jpg",
    "videos/animated.gif",  # .gif is a video suffix: every frame
]


def build_inputs(folder: Path) -> dict[str, Any]:
    """Write every input under ``folder``; returns facts the checks need."""
    src = LocalStorage(folder)
    tiff, tiff_wh = badmedia.multipage_tiff()
    files = {
        "zero-byte.jpg": b"",
        "truncated.jpg": badmedia.truncated_jpeg(),
        "truncated.png": badmedia.truncated_png(),
        "notes.jpg": b"shopping list: eggs, milk\n",
        "error-page.jpg": badmedia.html_page(),
        "bomb.png": badmedia.png_bomb(),
        "16-bit.png": badmedia.png_16bit(),
        "grayscale.jpg": badmedia.grayscale_jpeg(),
        "rgba.png": badmedia.rgba_png(),
        "cmyk.jpg": badmedia.cmyk_jpeg(),
        "exif-rotated.jpg": badmedia.exif_rotated_jpeg(),
        "gif-named-as.jpg": badmedia.animated_gif(),
        "multipage.tiff": tiff,
        "huge-48mp.jpg": badmedia.huge_jpeg(),
        "with space/my photo.jpg": badmedia.DOG_JPEG,
        "ünïcødé/写真 1.jpg": badmedia.DOG_JPEG,
        "videos/corrupt.mp4": badmedia.corrupt_video(),
        "videos/truncated.mp4": badmedia.truncated_video(),
        "videos/zero-frames.avi": badmedia.zero_frame_video(str(folder.parent / "zero.avi")),
        "videos/animated.gif": badmedia.animated_gif(),
    }
    for key, data in files.items():
        src.write_bytes(key, data)
    assert len(files["bomb.png"]) < 10_000  # a few KB that claim 900 MP
    return {"tiff_wh": tiff_wh}


def outcomes(store: JobStore, record: JobRecord) -> tuple[set[str], dict[str, dict[str, Any]]]:
    done = store.client.smembers(f"{store.prefix}:job:{record.job_id}:done")
    return set(done), dict(store.failures(record.job_id))


def assert_one_outcome_each(done: set[str], failed: dict[str, Any], items: list[str]) -> None:
    assert not done & set(failed), f"items both done and failed: {done & set(failed)}"
    assert done | set(failed) == set(items)


def models_file(tmp_path: Path) -> Path:
    """A registry file adding ``yolox-badsha``: yolox-nano's files with a wrong model sha256."""
    path = tmp_path / "models.toml"
    path.write_text(
        "[models.yolox-badsha]\n"
        'task = "detection"\nfamily = "yolox"\n'
        f'files.model = {{ path = "detection/yolox_nano_416.onnx", sha256 = "{"0" * 64}" }}\n'
        'labels = { path = "labels/coco80.names" }\n'
        'preprocess = { input_wh = [416, 416], resize = "letterbox", pad_value = 114 }\n',
        encoding="utf-8",
    )
    return path


def publish_not_json(redis_url: str, queue: str) -> None:
    """A task message whose body is not JSON, as a broken or hostile producer would send it."""
    with Connection(redis_url) as conn:
        conn.Producer().publish(
            b'{"v": 1, "kind": "image_batch", "items": [',
            routing_key=queue,
            exchange="",
            content_type="application/json",
            content_encoding="utf-8",
            headers={"lang": "py", "task": TASK_IMAGE_BATCH, "id": str(uuid.uuid4())},
        )


def test_every_bad_input_is_one_clear_outcome_and_the_worker_lives(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore
) -> None:
    settings = settings.with_(max_pixels=MAX_PIXELS, models_file=models_file(tmp_path))
    fleet.settings = settings
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    facts = build_inputs(in_dir)
    worker = fleet.start("w1")
    app = create_app(settings)

    # 1. A message that is not JSON: dropped with a log line, and the worker goes on.
    publish_not_json(settings.redis_url, queue_name("yolox-nano"))

    # 2. The folder through the producer, as a user submits it.
    job = submit(settings, app, str(in_dir), str(out_dir), "yolox-nano")
    items = list(EXPECTED_FAILURES) + PROCESSED
    assert job.items == len(items)

    # 3. What a listing never yields but a crafted message can carry: keys that climb out of
    #    the root, an unknown model, a model whose file fails its sha256.
    crafted = job_store.create(LocalStorage(in_dir).uri, LocalStorage(out_dir).uri, "yolox-nano")
    bad_keys = ("../outside.jpg", "/etc/passwd.jpg", "with space/../../../x.jpg")
    sends = [
        ImageBatch(crafted, 0, f"file://{in_dir}/", f"file://{out_dir}/", "yolox-nano", bad_keys),
        ImageBatch(
            crafted, 1, f"file://{in_dir}/", f"file://{out_dir}/", "no-such-model", ("a.jpg",)
        ),
        ImageBatch(
            crafted, 2, f"file://{in_dir}/", f"file://{out_dir}/", "yolox-badsha", ("b.jpg",)
        ),
    ]
    job_store.add_items(crafted, 5)
    job_store.finish_listing(crafted)
    for message in sends:  # all on the served queue, as a mistaken producer would send them
        app.send_task(TASK_IMAGE_BATCH, args=[message.encode()], queue=queue_name("yolox-nano"))

    record = wait_for_job(job_store, job.job_id or "", timeout_s=240)
    done, failed = outcomes(job_store, record)
    assert_one_outcome_each(done, failed, items)
    assert (record.done, record.failed) == (len(PROCESSED), len(EXPECTED_FAILURES))
    for item, (error, words) in EXPECTED_FAILURES.items():
        reason = failed[item]
        assert reason["error"] == error, (item, reason)
        assert item in reason["message"], (item, reason["message"])  # names the file
        for word in words:
            assert word in reason["message"], (item, word, reason["message"])

    crafted_record = wait_for_job(job_store, crafted, timeout_s=60)
    crafted_done, crafted_failed = outcomes(job_store, crafted_record)
    assert crafted_done == set()
    assert set(crafted_failed) == {*bad_keys, "a.jpg", "b.jpg"}
    for key in bad_keys:
        assert crafted_failed[key]["error"] == "StorageError"
        assert key in crafted_failed[key]["message"]
    assert "escapes the storage root" in crafted_failed["../outside.jpg"]["message"]
    assert "relative" in crafted_failed["/etc/passwd.jpg"]["message"]
    assert crafted_failed["a.jpg"]["error"] == "UnknownModelError"
    assert "unknown model 'no-such-model'; known models:" in crafted_failed["a.jpg"]["message"]
    assert crafted_failed["b.jpg"]["error"] == "ChecksumMismatch"
    assert "yolox_nano_416.onnx has sha256" in crafted_failed["b.jpg"]["message"]
    assert not (tmp_path / "outside.jpg").exists()
    assert not (tmp_path / "x.jpg").exists()

    check_processed_outputs(open_storage(str(out_dir)), facts)
    log = worker.log()
    assert "Can't decode message body" in log  # the non-JSON message, dropped and said why
    assert worker.process.poll() is None, "the worker died"


def check_processed_outputs(dst: LocalStorage, facts: dict[str, Any]) -> None:
    """Each processed item has its two outputs, and the document agrees with the annotated image."""
    docs = {}
    for item in PROCESSED:
        video = item.endswith(".gif")
        docs[item] = json.loads(dst.read_bytes(result_key(item)))
        assert dst.exists(annotated_key(item, video=video)), item
        if video:
            continue
        annotated = decode_image(dst.read_bytes(annotated_key(item)), item)
        size = docs[item]["image"]
        assert (size["width"], size["height"]) == (annotated.shape[1], annotated.shape[0]), item

    assert (docs["huge-48mp.jpg"]["image"]["width"], docs["huge-48mp.jpg"]["image"]["height"]) == (
        8000,
        6000,
    )
    page = docs["multipage.tiff"]["image"]
    assert (page["width"], page["height"]) == facts["tiff_wh"]  # the first page
    gif = docs["videos/animated.gif"]
    assert gif["video"]["frames"] == 3
    assert len(dst.read_bytes(frames_key("videos/animated.gif")).splitlines()) == 3
    assert docs["gif-named-as.jpg"]["image"] == {"width": 128, "height": 96}  # its first frame

    # EXIF orientation honoured: the stored pixels lie on their side, the result is upright and
    # its dog is where the upright photo's dog is.
    rotated = docs["exif-rotated.jpg"]
    assert (rotated["image"]["width"], rotated["image"]["height"]) == (768, 576)
    adapter = load_adapter(load_registry().get("yolox-nano"), ModelStore(MODEL_DIR, download=False))
    upright = adapter(badmedia.dog())
    want = upright.xyxy[list(upright.data["class_name"]).index("dog")]
    got_rows = rotated["results"]
    names = got_rows["data"]["class_name"]
    got = got_rows["xyxy"][names.index("dog")]
    assert iou(got, want.tolist()) > 0.8, (got, want)
    for item in ("cmyk.jpg", "grayscale.jpg", "16-bit.png", "rgba.png", "with space/my photo.jpg"):
        assert "dog" in docs[item]["results"]["data"]["class_name"], item


def test_stored_exif_pixels_lie_on_their_side() -> None:
    """Guards the test input itself: without honouring the tag, the image is 576 wide."""
    data = np.frombuffer(badmedia.exif_rotated_jpeg(), np.uint8)
    stored = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    assert stored.shape[:2] == (768, 576)


def test_run_honours_the_pixel_limit(settings: Settings, tmp_path: Path) -> None:
    """``framefleet run`` refuses what a worker refuses: FRAMEFLEET_MAX_PIXELS or --max-pixels."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "dog.jpg").write_bytes(badmedia.DOG_JPEG)
    args = ["run", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--max-pixels", "400000"]
    result = run_cli(settings, *args)
    assert result.returncode == 1, result.stderr  # the run finished, its one item failed
    assert "dog.jpg" in result.stderr
    assert "JPEG of 768×576 = 0.4 MP is above the 0.4 MP limit" in result.stderr
