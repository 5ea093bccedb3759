"""Videos through the fleet: planned on a worker, split into segments that real workers share,
merged into one H.264 video, one JSON Lines results file and one document. Real Redis, real
SeaweedFS S3 and local folders, real `framefleet worker` processes, the shared videos."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import av
import pytest
from fleet import Fleet, wait_for_job
from helpers import MEDIA_DIR
from test_e2e import run_cli

from benchmarks.procstats import child_pids
from framefleet.core.documents import VideoDocument, read_document
from framefleet.core.jobrecord import JobStatus
from framefleet.core.outputs import annotated_key, frames_key, result_key
from framefleet.core.sampling import Sampling
from framefleet.core.settings import Settings
from framefleet.core.storage import Storage, open_storage
from framefleet.queue import create_app
from framefleet.state.jobs import JobStore
from producer.submit import submit

pytestmark = pytest.mark.integration

VIDEOS = MEDIA_DIR / "video"
WALK = "person_walk_10s_768x432_mp4v.mp4"  # 100 frames, 10 fps, 768x432, one person walking
GIF = "intel_person-bicycle-car-detection.gif"  # 41 frames, 480x270
PERSON = 0  # COCO class id


def put(storage: Storage, name: str, key: str | None = None) -> str:
    key = key or name
    storage.write_bytes(key, (VIDEOS / name).read_bytes())
    return key


def document(dst: Storage, key: str) -> VideoDocument:
    doc = read_document(dst.read_bytes(result_key(key)))
    assert isinstance(doc, VideoDocument)
    return doc


def lines(dst: Storage, key: str) -> list[dict]:
    return [json.loads(line) for line in dst.read_bytes(frames_key(key)).splitlines()]


def assert_whole_video(
    dst: Storage, key: str, tmp_path: Path, frames: int, fps: float, size: tuple[int, int]
) -> None:
    """The merged video has the input's frame count, fps and size, and is H.264 in MP4."""
    path = tmp_path / f"merged-{key.replace('/', '_')}.mp4"
    path.write_bytes(dst.read_bytes(annotated_key(key, video=True)))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_tag == "avc1"
        assert (stream.width, stream.height) == size
        assert float(stream.average_rate) == pytest.approx(fps)
        assert sum(1 for _ in container.decode(stream)) == frames


def assert_each_sampled_frame_once(
    got: list[dict], frames: int, sampling: Sampling, fps: float
) -> None:
    want = [i for i in range(frames) if sampling.picks(i, fps)]
    assert [line["frame"] for line in got] == want  # no gap, no repeat, in order
    assert all(not line.get("overlap") for line in got)


def test_segments_cover_every_frame_once_and_keep_one_track(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore
) -> None:
    """2 s segments divide the 10 s clip; 3 s segments with every 3rd frame do not."""
    src = open_storage(str(tmp_path / "in"))
    key = put(src, WALK, "walk/a.mp4")
    fleet.start("w1")
    cases = [(2.0, Sampling()), (3.0, Sampling(every=3))]
    for seconds, sampling in cases:
        out = open_storage(str(tmp_path / f"out-{seconds}"))
        done = submit(
            settings.with_(segment_seconds=seconds),
            create_app(settings),
            src.uri,
            out.uri,
            "yolox-nano",
            sampling=sampling,
        )
        record = wait_for_job(job_store, done.job_id or "")
        assert (record.total, record.done, record.failed, record.status) == (
            1,
            1,
            0,
            JobStatus.DONE,
        )
        (video,) = record.videos
        expected_segments = -(-100 // round(seconds * 10))
        assert (video.segments_done, video.segments_total, video.state) == (
            expected_segments,
            expected_segments,
            "merged",
        )
        got = lines(out, key)
        assert_each_sampled_frame_once(got, 100, sampling, 10.0)
        assert all(line["t"] == pytest.approx(line["frame"] / 10) for line in got)
        assert_whole_video(out, key, tmp_path, 100, 10.0, (768, 432))
        doc = document(out, key)
        assert (doc.frames, doc.fps, doc.width, doc.height) == (100, 10.0, 768, 432)
        assert [s.start_frame for s in doc.segments] == list(range(0, 100, round(seconds * 10)))
        assert doc.summary.sampled_frames == len(got)
        # a person in most frames, and one track id for them across every segment boundary
        person_ids = [
            tid
            for line in got
            for cid, tid in zip(
                line["results"]["class_id"], line["results"]["tracker_id"], strict=True
            )
            if cid == PERSON
        ]
        frames_with_person = sum(PERSON in line["results"]["class_id"] for line in got)
        assert frames_with_person >= 0.9 * len(got)
        (main_id, n), *_ = Counter(person_ids).most_common()
        assert main_id >= 1
        assert n >= 0.9 * frames_with_person, Counter(person_ids)
        assert doc.summary.tracks[main_id]["class"] == "person"
        assert doc.summary.tracks[main_id]["first_frame"] == 0
        assert doc.summary.tracks[main_id]["last_frame"] == got[-1]["frame"]
        assert not list(out.list("_framefleet/parts/"))  # parts deleted after the merge


def test_two_workers_share_segments_on_s3_and_bad_videos_fail_cleanly(
    settings: Settings, fleet: Fleet, s3_server, tmp_path: Path, job_store: JobStore
) -> None:
    fleet.extra_env = s3_server.env()
    s3_server.create_bucket("clips")
    s3_server.create_bucket("clips-out")
    src, dst = open_storage("s3://clips/in/"), open_storage("s3://clips-out/run/")
    walk, gif = put(src, WALK), put(src, GIF)
    data = (VIDEOS / WALK).read_bytes()
    src.write_bytes("bad/corrupt.mp4", b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
    src.write_bytes(
        "bad/truncated.mp4",
        (VIDEOS / "intel_one-by-one-person-detection.mp4").read_bytes()[:1_500_000],
    )
    src.write_bytes("bad/empty.mp4", b"")
    zero = tmp_path / "zero.mp4"
    with av.open(str(zero), "w") as container:  # a valid MP4 with a video stream and no frame
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        container.start_encoding()
    src.write_bytes("bad/zero-frames.mp4", zero.read_bytes())
    src.write_bytes("bad/short.mp4", data[: len(data) // 2])  # header (moov) at the end: cut off
    fleet.start("alpha"), fleet.start("beta")
    done = submit(
        settings.with_(segment_seconds=1.0), create_app(settings), src.uri, dst.uri, "yolox-nano"
    )
    record = wait_for_job(job_store, done.job_id or "")
    failures = dict(job_store.failures(record.job_id))
    assert (record.total, record.done, record.failed) == (7, 2, 5), failures
    assert set(failures) == {
        "bad/corrupt.mp4",
        "bad/truncated.mp4",
        "bad/empty.mp4",
        "bad/zero-frames.mp4",
        "bad/short.mp4",
    }
    for item, reason in failures.items():
        assert reason["error"] == "VideoOpenError", reason
        assert item in reason["message"], reason  # which file
    assert "0 bytes" in failures["bad/empty.mp4"]["message"]
    assert "truncated" in failures["bad/truncated.mp4"]["message"]
    assert "no video stream with frames" in failures["bad/zero-frames.mp4"]["message"]
    for key in failures:
        assert not dst.exists(result_key(key))
        assert not dst.exists(annotated_key(key, video=True))
    # two processes made the frames of one video, and each line says which
    got = lines(dst, walk)
    assert_each_sampled_frame_once(got, 100, Sampling(), 10.0)
    workers = Counter(line["worker"] for line in got)
    assert len(workers) == 2, workers
    assert document(dst, walk).summary.frames_by_worker == dict(workers)
    assert_whole_video(dst, walk, tmp_path, 100, 10.0, (768, 432))
    # the GIF: 41 frames at 12.5 fps, merged into an H.264 MP4 of the same size
    assert_each_sampled_frame_once(lines(dst, gif), 41, Sampling(), 12.5)
    assert_whole_video(dst, gif, tmp_path, 41, 12.5, (480, 270))
    assert document(dst, gif).summary.classes.get("car", 0) > 0
    for worker in fleet.workers:
        assert worker.process.poll() is None  # bad videos never kill a worker


def test_segment_killed_midway_is_redone(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore
) -> None:
    src, dst = open_storage(str(tmp_path / "in")), open_storage(str(tmp_path / "out"))
    key = put(src, WALK)
    worker = fleet.start("w1")
    done = submit(
        settings.with_(segment_seconds=1.0), create_app(settings), src.uri, dst.uri, "yolox-nano"
    )
    job_id = done.job_id or ""
    record = wait_for_job(
        job_store, job_id, until=lambda r: bool(r.videos) and r.videos[0].segments_done >= 2
    )
    assert not record.finished
    (child,) = child_pids(worker.pid)  # the prefork pool's one process, busy with a segment
    os.kill(child, signal.SIGKILL)
    record = wait_for_job(job_store, job_id)
    assert (record.done, record.failed, record.status) == (1, 0, JobStatus.DONE)
    log = worker.log()
    assert "WorkerLostError" in log or "exited with 'signal 9" in log, log[-3000:]
    assert_each_sampled_frame_once(lines(dst, key), 100, Sampling(), 10.0)
    assert_whole_video(dst, key, tmp_path, 100, 10.0, (768, 432))
    assert record.videos[0].segments_done == 10
    # `framefleet status` shows the video's segments, in text and in JSON
    shown = run_cli(settings, "status", job_id)
    assert shown.returncode == 0, shown.stderr
    assert f"{key}  10/10 segments  merged" in shown.stdout
    as_json = json.loads(run_cli(settings, "status", job_id, "--json").stdout)
    assert as_json["videos"][0]["segments_done"] == as_json["videos"][0]["segments_total"] == 10
    time.sleep(0)  # the worker's new pool process keeps serving
    assert worker.process.poll() is None


def test_retry_runs_a_failed_video_as_submitted(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore
) -> None:
    """`framefleet retry` sends a failed video with the job's own segment length and sampling
    (issue 22: it used to send it with the defaults, 10 s segments and every frame)."""
    src, dst = open_storage(str(tmp_path / "in")), open_storage(str(tmp_path / "out"))
    key = "walk/late.mp4"
    src.write_bytes(key, b"still uploading")  # unreadable: the video fails
    fleet.start("w1")
    args = ("--out", dst.uri, "--segment-seconds", "2", "--fps", "5", "--batch-size", "3")
    first = run_cli(settings, "submit", src.uri, *args, "--wait")
    assert first.returncode == 1, first.stderr
    job_id = first.stdout.splitlines()[0].strip()
    record = job_store.get(job_id)
    assert (record.done, record.failed, record.status) == (0, 1, JobStatus.DONE)
    put(src, WALK, key)  # the real video, 10 s at 10 fps
    again = run_cli(settings, "retry", job_id, "--wait")
    assert again.returncode == 0, again.stderr + again.stdout
    record = wait_for_job(job_store, job_id)
    assert (record.done, record.failed, record.status) == (1, 0, JobStatus.DONE)
    (video,) = record.videos
    assert (video.segments_done, video.segments_total, video.state) == (5, 5, "merged")  # 2 s
    sampling = Sampling(fps=5.0)
    got = lines(dst, key)
    assert_each_sampled_frame_once(got, 100, sampling, 10.0)
    assert [line["frame"] for line in got] == list(range(0, 100, 2))  # 5 of its 10 frames a second
    doc = document(dst, key)
    assert [s.start_frame for s in doc.segments] == list(range(0, 100, 20))
    assert doc.sampling == sampling.to_json()
    assert doc.summary.sampled_frames == 50
