"""The results tables, made by real workers: one row per item and per box, equal to the result
documents, compacted when the job ends; redone messages replace their part."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from faults import holders, kill
from fleet import Fleet, wait_for_job, wait_for_object
from helpers import MEDIA_DIR
from tables import assert_tables_match

from benchmarks.procstats import child_pids
from framefleet.core.documents import ImageDocument, ModelInfo
from framefleet.core.jobrecord import JobStatus
from framefleet.core.outputs import report_key, table_part_key, table_parts_prefix, table_prefix
from framefleet.core.results import Detections
from framefleet.core.sampling import Sampling
from framefleet.core.settings import Settings
from framefleet.core.storage import open_storage
from framefleet.core.tables import DETECTIONS, IMAGES, Rows
from framefleet.dataset import compact, open_results, part_name, write_part
from framefleet.dataset.parts import encode_table
from framefleet.queue import create_app
from framefleet.state.connection import Connection
from framefleet.state.jobs import JobStore
from framefleet.state.leases import LeaseStore
from producer.submit import submit

pytestmark = pytest.mark.integration

VIDEO = MEDIA_DIR / "video" / "parking_lot_person_bicycle_car_480x270_mp4v.mp4"


def test_tables_hold_one_row_per_item_and_box_of_the_documents(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore, media_images: list[Path]
) -> None:
    src_dir = tmp_path / "in"
    src_dir.mkdir()
    for path in media_images[:7]:
        shutil.copy(path, src_dir / path.name)
    (src_dir / "empty.jpg").write_bytes(b"")
    (src_dir / "notes.jpg").write_bytes(b"a text file, not a JPEG\n")
    shutil.copy(VIDEO, src_dir / "lot.mp4")
    settings = settings.with_(segment_seconds=2.0)
    fleet.settings = settings
    fleet.start("w1")
    out = tmp_path / "out"
    done = submit(
        settings,
        create_app(settings),
        str(src_dir),
        str(out),
        "yolox-nano",
        sampling=Sampling(fps=5.0),
    )
    record = wait_for_job(job_store, done.job_id or "", timeout_s=240)
    assert (record.status, record.done, record.failed) == (JobStatus.DONE, 8, 2)
    dst = open_storage(str(out))
    images = [p.name for p in media_images[:7]]
    assert_tables_match(dst, done=[*images, "lot.mp4"], failed=["empty.jpg", "notes.jpg"])
    assert list(dst.list(table_prefix(IMAGES)))  # compacted files, not parts
    # Issue 30 item 10: no empty folders left where the video's and the tables' parts were
    assert not (out / "_framefleet" / "parts").exists()
    assert not (out / "_framefleet" / "results" / "parts").exists()
    with open_results(dst) as results:
        video = results.sql(
            "SELECT kind, frames, fps, width, height FROM images WHERE item = 'lot.mp4'"
        ).fetchone()
        assert video is not None
        assert video[0] == "video"
        assert video[1] > 10
        assert (video[3], video[4]) == (480, 270)
        tracked = results.sql(
            "SELECT count(DISTINCT track_id), min(t), max(t) FROM detections "
            "WHERE item = 'lot.mp4' AND track_id >= 0"
        ).fetchone()
        assert tracked is not None
        assert tracked[0] >= 1
        assert tracked[2] > tracked[1]
        failed = dict(
            results.sql("SELECT item, error FROM images WHERE status = 'failed'").fetchall()
        )
        assert failed == {"empty.jpg": "ImageDecodeError", "notes.jpg": "ImageDecodeError"}
        meta = results.sql(
            "SELECT DISTINCT model, engine, job_id FROM images WHERE status = 'done'"
        ).fetchall()
        assert meta == [("yolox-nano", "cv2.dnn", record.job_id)]


def _document(item: str, boxes: int) -> ImageDocument:
    found = Detections(
        xyxy=np.tile(np.array([[1, 2, 30, 40]], np.float32), (boxes, 1)),
        confidence=np.full(boxes, 0.5, np.float32),
        class_id=np.arange(boxes, dtype=np.int32),
    )
    info = ModelInfo("yolox-nano", "detection", "0" * 64, "cv2.dnn")
    return ImageDocument(f"file:///in/{item}", info, 64, 48, found, worker="h:1")


def test_a_redone_message_replaces_its_part_and_a_retry_wins(tmp_path: Path) -> None:
    dst = open_storage(str(tmp_path / "out"))

    def part(items: list[str], ok: bool, at: float) -> str:
        rows = Rows(part_name("j1", "b0000001", items), "j1")
        for item in items:
            if ok:
                rows.add_document(item, _document(item, boxes=2))
            else:
                rows.add_failure(item, "StorageUnavailable", f"{item}: timed out", "h:1")
        tables = rows.tables(written_at=at)
        for name in (DETECTIONS, IMAGES):
            dst.write_bytes(table_part_key(name, rows.part), encode_table(tables[name]))
        return rows.part

    first = part(["a.jpg", "b.jpg"], ok=False, at=100.0)
    again = part(["a.jpg", "b.jpg"], ok=False, at=101.0)  # the same message redelivered
    assert first == again
    assert len(list(dst.list(table_parts_prefix(IMAGES)))) == 1
    part(["b.jpg"], ok=True, at=102.0)  # a retry of b alone: a part of its own, newer
    with open_results(dst) as results:
        assert results.sql("SELECT count(*) FROM raw_images").fetchone() == (3,)
        rows = results.sql("SELECT item, status, detections FROM images ORDER BY item").fetchall()
        assert rows == [("a.jpg", "failed", 0), ("b.jpg", "done", 2)]
        boxes = results.sql("SELECT item, nx2, ny2 FROM detections").fetchall()
        assert boxes == [("b.jpg", pytest.approx(30 / 64), pytest.approx(40 / 48))] * 2
    done = compact(dst)
    assert (done.rows[IMAGES], done.rows[DETECTIONS], done.removed) == (
        2,
        2,
        4,
    )  # two parts of two tables
    assert not list(dst.list(table_parts_prefix(IMAGES)))
    with open_results(dst) as results:
        assert results.sql("SELECT count(*) FROM raw_images").fetchone() == (2,)
    assert write_part(dst, Rows("empty", "j1"))  # nothing to write is not an error


def test_a_classifier_counts_its_top_class_and_keeps_its_embedding(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore, media_images: list[Path]
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    names = sorted(p.name for p in media_images[:3])
    for path in media_images[:3]:
        shutil.copy(path, src / path.name)
    worker = fleet.start("w1", "--models", "mobilenet-v2,mobilenet-v2-embed")
    for model in ("mobilenet-v2", "mobilenet-v2-embed"):
        out = tmp_path / model
        done = submit(settings, create_app(settings), str(src), str(out), model)
        record = wait_for_job(job_store, done.job_id or "")
        dst = open_storage(str(out))
        assert_tables_match(dst, done=names)
        summary = json.loads(wait_for_object(dst, report_key("summary.json")))
        assert sum(summary["classes"].values()) == 3  # one top class an image, not its top k
        assert summary["classes"] == record.classes
        with open_results(dst) as results:
            top = results.sql(
                "SELECT item, count(*), max(len(embedding)) FILTER (WHERE rank = 0) "
                "FROM detections GROUP BY item ORDER BY item"
            ).fetchall()
        assert [row[0] for row in top] == names
        if model == "mobilenet-v2":
            assert all(row[1] > 1 for row in top)  # the runners-up are rows too
        else:
            assert all(row[2] == 1280 for row in top)  # each image's embedding
    # Each model's queue on its own exchange and key (issue 30 item 9: the second queue was
    # bound to the first one's)
    for model in ("mobilenet-v2", "mobilenet-v2-embed"):
        queue = f"framefleet.{model}"
        assert f"{queue} exchange={queue}(direct) key={queue}" in worker.log()


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_ten_thousand_items_with_killed_children_keep_one_row_each(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore, media_images: list[Path]
) -> None:
    """10,000 images (hard links to the shared photos), two pool children SIGKILLed mid-task:
    their messages are redone, and the tables still hold each item once, with its boxes."""
    settings = settings.with_(batch_size=8, lease_ttl_s=6.0)
    fleet.settings = settings
    src = tmp_path / "in"
    keys = []
    for n in range(10_000):
        key = f"d{n // 1000}/{n:05d}{media_images[n % len(media_images)].suffix}"
        (src / key).parent.mkdir(parents=True, exist_ok=True)
        os.link(media_images[n % len(media_images)], src / key)
        keys.append(key)
    worker = fleet.start("kids", "--concurrency", "2")
    done = submit(settings, create_app(settings), str(src), str(tmp_path / "out"), "yolox-nano")
    leases = LeaseStore(Connection.from_url(settings.redis_url))
    killed: set[int] = set()
    deadline = time.monotonic() + 300
    while len(killed) < 2:
        assert time.monotonic() < deadline, "no pool child held a lease to kill"
        busy = [pid for pid, _ in holders(leases) if pid in set(child_pids(worker.pid)) - killed]
        if busy and job_store.get(done.job_id or "").done > 500 * (len(killed) + 1):
            time.sleep(0.2)  # somewhere inside the task
            if kill(busy[0]):
                killed.add(busy[0])
        time.sleep(0.05)
    record = wait_for_job(job_store, done.job_id or "", timeout_s=1200)
    assert (record.status, record.done, record.failed) == (JobStatus.DONE, 10_000, 0)
    start = time.monotonic()
    assert_tables_match(open_storage(str(tmp_path / "out")), done=keys, timeout_s=300)
    print(f"TABLES 10k items checked in {time.monotonic() - start:.1f} s")
