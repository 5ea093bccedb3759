"""`submit --follow` with real workers, a real Redis, a local folder and a SeaweedFS bucket: files
added while the job follows are processed within twice the interval; a rewritten file is processed
again and an untouched one is not; cancel and --max-items close the job with exact counts; a
producer killed with SIGKILL and started again resumes the same job, missing and doubling
nothing; two producers started at once share one job, one listing and one standing by."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from faults import assert_exactly_once
from fleet import Fleet, run_cli, wait_for_job, wait_for_object
from seaweed import unique_root
from test_faults_services import Cli
from test_video import (
    WALK,
    assert_each_sampled_frame_once,
    assert_whole_video,
    document,
    lines,
    put,
)

from framefleet.core.jobrecord import JobRecord, JobStatus
from framefleet.core.outputs import report_key, result_key, table_prefix
from framefleet.core.sampling import Sampling
from framefleet.core.settings import Settings
from framefleet.core.storage import Storage, open_storage
from framefleet.core.tables import IMAGES
from framefleet.queue import create_app
from framefleet.state.follow import FollowStore
from framefleet.state.jobs import JobStore
from producer import follow as follow_module
from producer.follow import FollowOptions, Tick

pytestmark = pytest.mark.integration

RNG = np.random.default_rng(15)
PARKING = "parking_lot_person_bicycle_car_480x270_mp4v.mp4"  # 41 frames, 12.5 fps, 480x270


def put_image(storage: Storage, key: str) -> str:
    """A small random JPEG at ``key`` (new content every call)."""
    ok, data = cv2.imencode(".jpg", RNG.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    assert ok
    storage.write_bytes(key, data.tobytes())
    return key


def created_at(dst: Storage, key: str) -> float:
    return float(json.loads(dst.read_bytes(result_key(key)))["created_at"])


def until_done(store: JobStore, job_id: str, done: int, timeout_s: float = 60) -> JobRecord:
    return wait_for_job(store, job_id, timeout_s, until=lambda r: r.done >= done)


def follow_cli(fleet: Fleet, name: str, src: Storage, out: str, *extra: str) -> Cli:
    return Cli(fleet, name, "submit", src.uri, "--out", out, "--follow", *extra)


def close_and_check(
    fleet: Fleet, store: JobStore, producer: Cli, job_id: str, out: str
) -> JobRecord:
    """`framefleet cancel` a following job: it closes, the producer ends 0, the job ends done."""
    closed = run_cli(fleet.settings, "cancel", job_id)
    assert closed.returncode == 0, closed.stderr
    assert f"closed {job_id} for new objects" in closed.stdout
    assert producer.wait(60) == 0, producer.stderr()
    record = wait_for_job(store, job_id, timeout_s=60)
    assert record.status is JobStatus.DONE, record
    summary = json.loads(wait_for_object(open_storage(out), report_key("summary.json")))
    assert (summary["status"], summary["total"], summary["done"]) == (
        "done",
        record.total,
        record.done,
    )
    return record


def test_follow_local_new_and_rewritten_files_then_cancel(
    fleet: Fleet, tmp_path: Path, job_store: JobStore
) -> None:
    interval_s = 2.0
    src, out = open_storage(str(tmp_path / "in")), str(tmp_path / "out")
    keys = [put_image(src, f"cam/{n:02d}.jpg") for n in range(3)]
    fleet.start("w1")
    producer = follow_cli(
        fleet, "follow", src, out, "--interval", f"{interval_s}s", "--compact-every", "1s"
    )
    job_id = producer.first_line()
    until_done(job_store, job_id, 3)
    dst = open_storage(out)

    # Added while following: processed within twice the interval (the bound: at most one
    # interval until the next listing, one for the work), while the job stays open. The interval
    # leaves the work 2 s for two small images, so a loaded machine keeps the bound; the lag
    # itself is the follow_lag benchmark's figure.
    added_at = time.monotonic()
    keys += [put_image(src, "cam/03.jpg"), put_image(src, "cam/04.jpg")]
    # cam/04.jpg as `cp -p` lands it: an mtime from yesterday; its lag counts from its arrival
    # (issue 30, item 10: p95 read 264 s)
    yesterday = time.time() - 86_400
    os.utime(tmp_path / "in" / "cam/04.jpg", (yesterday, yesterday))
    until_done(job_store, job_id, 5, timeout_s=30)
    took = time.monotonic() - added_at
    assert took <= 2 * interval_s, f"new files took {took:.2f} s with --interval {interval_s}s"
    assert producer.process.poll() is None, producer.stderr()
    assert not job_store.get(job_id).finished

    # Rewritten: processed again; untouched: not.
    before = {key: created_at(dst, key) for key in keys}
    put_image(src, "cam/01.jpg")
    deadline = time.monotonic() + 30
    while not (
        dst.exists(result_key("cam/01.jpg"))
        and created_at(dst, "cam/01.jpg") > before["cam/01.jpg"]
    ):
        assert time.monotonic() < deadline, producer.stderr()
        time.sleep(0.1)
    until_done(job_store, job_id, 5)
    assert {k: created_at(dst, k) for k in keys if k != "cam/01.jpg"} == {
        k: v for k, v in before.items() if k != "cam/01.jpg"
    }

    shown = run_cli(fleet.settings, "status", job_id, "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    follow = data["follow"]
    assert (data["status"], follow["state"], follow["seen"], follow["rewrites"]) == (
        "listing",
        "following",
        6,
        1,
    )
    assert follow["lags"] >= 5
    assert 0 < follow["lag_p50_s"] <= follow["lag_p95_s"] < 60
    text = run_cli(fleet.settings, "status", job_id).stdout
    assert f"following every {interval_s:g} s" in text
    assert "lag       arrival to result p50" in text
    # The producer compacts the results tables while it follows; they answer meanwhile.
    deadline = time.monotonic() + 20
    while not list(dst.list(table_prefix(IMAGES))):
        assert time.monotonic() < deadline, "no compacted results table while following"
        time.sleep(0.2)
    rows = run_cli(fleet.settings, "query", job_id, "--csv", "SELECT count(*) FROM images")
    assert rows.stdout.split() == ["count_star()", "5"], rows.stderr

    record = close_and_check(fleet, job_store, producer, job_id, out)
    assert (record.total, record.done, record.failed) == (5, 5, 0)
    assert_exactly_once(job_store, record, dst, keys)
    info = FollowStore(job_store).get(job_id)
    assert info is not None
    assert (info.state, info.reason) == ("closed", "closed by framefleet cancel")


def test_follow_a_video_rewritten_after_it_was_merged_is_processed_again(
    fleet: Fleet, tmp_path: Path, job_store: JobStore
) -> None:
    # A 10 s clip (10 segments of 1 s) is merged, then the same key is rewritten with a 3.3 s
    # clip of another size: its segment state is reset and it runs again, and the published
    # video, frame lines and document are the new clip's, whole (no frame of the old one).
    fleet.settings = fleet.settings.with_(segment_seconds=1.0)
    src, out = open_storage(str(tmp_path / "in")), str(tmp_path / "out")
    dst = open_storage(out)
    key = put(src, WALK, "cams/clip.mp4")
    fleet.start("w1", "--concurrency", "2")
    producer = follow_cli(fleet, "p", src, out, "--interval", "0.5s")
    job_id = producer.first_line()
    first = until_done(job_store, job_id, 1, timeout_s=120)
    assert (first.videos[0].state, first.videos[0].segments_total) == ("merged", 10)
    assert_whole_video(dst, key, tmp_path, 100, 10.0, (768, 432))

    put(src, PARKING, key)  # same key, new content
    deadline = time.monotonic() + 120
    while True:
        record = job_store.get(job_id)
        info = FollowStore(job_store).get(job_id)
        assert info is not None
        if info.rewrites == 1 and record.done == 1 and record.videos[0].state == "merged":
            break
        assert time.monotonic() < deadline, (record, producer.stderr())
        time.sleep(0.2)
    assert record.videos[0].segments_total == 4  # 41 frames at 12.5 fps, 1 s segments
    assert_whole_video(dst, key, tmp_path, 41, 12.5, (480, 270))
    assert_each_sampled_frame_once(lines(dst, key), 41, Sampling(), 12.5)
    assert document(dst, key).frames == 41

    record = close_and_check(fleet, job_store, producer, job_id, out)
    assert (record.total, record.done, record.failed) == (1, 1, 0)
    assert not [obj.key for obj in dst.list("_framefleet/parts/")]  # the old clip's parts too


def test_follow_max_items_and_until_close_the_job_by_themselves(
    fleet: Fleet, tmp_path: Path, job_store: JobStore
) -> None:
    src, out = open_storage(str(tmp_path / "in")), str(tmp_path / "out")
    keys = [put_image(src, f"{n}.jpg") for n in range(5)]
    fleet.start("w1")
    producer = follow_cli(fleet, "capped", src, out, "--interval", "0.2s", "--max-items", "3")
    job_id = producer.first_line()
    assert producer.wait(60) == 0, producer.stderr()
    assert "closed (--max-items 3 reached)" in producer.stderr()
    record = job_store.get(job_id)
    assert (record.status, record.total, record.done, record.failed) == (JobStatus.DONE, 3, 3, 0)
    assert_exactly_once(job_store, record, open_storage(out), keys[:3])  # in listing order

    # --until: closes by itself when the time comes, with what it found until then.
    out2 = str(tmp_path / "out2")
    timed = follow_cli(fleet, "timed", src, out2, "--interval", "0.2s", "--until", "1s")
    job_id = timed.first_line()
    assert timed.wait(60) == 0, timed.stderr()
    assert "closed (--until reached)" in timed.stderr()
    record = job_store.get(job_id)
    assert (record.status, record.total, record.done) == (JobStatus.DONE, 5, 5)
    assert_exactly_once(job_store, record, open_storage(out2), keys)


def test_follow_producer_killed_and_started_again_resumes(
    fleet: Fleet, tmp_path: Path, job_store: JobStore
) -> None:
    src, out = open_storage(str(tmp_path / "in")), str(tmp_path / "out")
    keys = [put_image(src, f"a{n:03d}.jpg") for n in range(30)]
    fleet.start("w1")
    args = ("--interval", "0.2s")
    first = follow_cli(fleet, "first", src, out, *args)
    job_id = first.first_line()
    wait_for_job(job_store, job_id, 30, until=lambda r: r.total > 0)
    first.process.kill()  # SIGKILL, somewhere between counting and sending
    first.process.wait()
    keys += [put_image(src, f"b{n:03d}.jpg") for n in range(10)]
    second = follow_cli(fleet, "second", src, out, *args)
    assert second.first_line() == job_id
    assert "resuming" in second.stderr()
    until_done(job_store, job_id, 40, timeout_s=120)
    record = close_and_check(fleet, job_store, second, job_id, out)
    assert (record.total, record.done, record.failed) == (40, 40, 0)
    assert_exactly_once(job_store, record, open_storage(out), keys)


def test_two_producers_started_at_once_follow_one_job_and_the_second_takes_over(
    fleet: Fleet, tmp_path: Path, job_store: JobStore
) -> None:
    # The same `submit --follow` twice at the same moment (two terminals, two replicas): one job,
    # one producer listing it, the other standing by. SIGKILL the listing one: the standby takes
    # over at once (a dead process of this host) and files added afterwards still run, once.
    src, out = open_storage(str(tmp_path / "in")), str(tmp_path / "out")
    keys = [put_image(src, f"a{n:03d}.jpg") for n in range(10)]
    fleet.start("w1")
    args = ("--interval", "0.2s")
    producers = [follow_cli(fleet, name, src, out, *args) for name in ("p1", "p2")]
    job_id = producers[0].first_line()
    assert producers[1].first_line() == job_id
    deadline = time.monotonic() + 30
    while not any("stands by" in p.stderr() for p in producers):
        assert time.monotonic() < deadline, [p.stderr() for p in producers]
        time.sleep(0.05)
    (standby,) = [p for p in producers if "stands by" in p.stderr()]
    (active,) = [p for p in producers if p is not standby]
    assert "tick " not in standby.stderr()  # it has not listed
    until_done(job_store, job_id, 10)
    active.process.kill()
    active.process.wait()
    keys += [put_image(src, f"b{n:03d}.jpg") for n in range(5)]
    until_done(job_store, job_id, 15, timeout_s=60)
    assert "tick " in standby.stderr()  # it took over the listing
    record = close_and_check(fleet, job_store, standby, job_id, out)
    assert (record.total, record.done, record.failed) == (15, 15, 0)
    assert_exactly_once(job_store, record, open_storage(out), keys)
    assert [j.job_id for j in job_store.recent()] == [job_id]  # one job, not two


def test_a_local_tick_checks_only_files_changed_since_the_last(
    settings: Settings, tmp_path: Path, job_store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No workers: this is about what each listing puts to Redis's admission script. A folder
    # that did not change costs no admission at all; a new file, or one rewritten in place (a
    # new ctime), is checked on the next tick; a rewrite waiting for its earlier run (always,
    # here) makes the ticks check everything; every FULL_RELIST_EVERY-th tick checks all.
    monkeypatch.setattr(follow_module, "CHANGE_SLACK_S", 0.1)
    src, out = open_storage(str(tmp_path / "in")), str(tmp_path / "out")
    for n in range(20):
        put_image(src, f"a{n:03d}.jpg")
    time.sleep(0.5)  # older than the first listing by more than the slack
    ticks: dict[int, Tick] = {}
    store = FollowStore(job_store)
    followed_job: list[str] = []

    def ticked(tick: Tick) -> None:
        ticks[tick.number] = tick
        if tick.number == 2:
            put_image(src, "new.jpg")
        if tick.number == 4:
            with (tmp_path / "in" / "a005.jpg").open("r+b") as f:
                f.write(b"\xff")  # rewritten in place: same name, new ctime
        if tick.number == follow_module.FULL_RELIST_EVERY + 1:
            store.close(followed_job[0], "test done")

    followed = follow_module.follow(
        settings, create_app(settings), src.uri, out, "yolox-nano", FollowOptions(interval_s=0.5),
        on_created=lambda job_id, resumed: followed_job.append(job_id), on_tick=ticked,
    )  # fmt: skip
    assert followed.reason == follow_module.CLOSED_ELSEWHERE
    seen = {n: (t.full, t.listed, t.checked, t.enqueued, t.deferred) for n, t in ticks.items()}
    assert seen[1] == (True, 20, 20, 20, 0), seen
    assert seen[2] == (False, 20, 0, 0, 0), seen  # nothing changed: no admission
    assert seen[3] == (False, 21, 1, 1, 0), seen  # the new file
    assert seen[4] == (False, 21, 0, 0, 0), seen
    assert seen[5] == (False, 21, 1, 0, 1), seen  # the rewrite, deferred (no outcome yet)
    assert seen[6] == (True, 21, 21, 0, 1), seen  # a deferred rewrite: check everything
    assert seen[7] == (True, 21, 21, 0, 1), seen  # and every 6th tick anyway
    assert job_store.get(followed.job_id).total == 21


def test_follow_s3_new_late_and_rewritten_keys_then_cancel(
    fleet: Fleet, s3_server: object, tmp_path: Path, job_store: JobStore
) -> None:
    src, out = open_storage(unique_root("follow") + "in/"), str(tmp_path / "out")
    keys = [put_image(src, f"m{n}.jpg") for n in range(3)]
    fleet.start("w1")
    producer = follow_cli(fleet, "s3", src, out, "--interval", "0.3s")
    job_id = producer.first_line()
    until_done(job_store, job_id, 3)
    dst = open_storage(out)
    # After the cursor (found by the next listing), before it (found by a whole relisting).
    keys += [put_image(src, "z0.jpg"), put_image(src, "a0.jpg")]
    until_done(job_store, job_id, 5, timeout_s=30)
    before = created_at(dst, "m1.jpg")
    put_image(src, "m1.jpg")
    deadline = time.monotonic() + 30
    while created_at(dst, "m1.jpg") <= before:
        assert time.monotonic() < deadline, producer.stderr()
        time.sleep(0.1)
    until_done(job_store, job_id, 5)
    record = close_and_check(fleet, job_store, producer, job_id, out)
    assert (record.total, record.done, record.failed) == (5, 5, 0)
    assert_exactly_once(job_store, record, dst, keys)
    info = FollowStore(job_store).get(job_id)
    assert info is not None
    assert (info.seen, info.rewrites) == (6, 1)
