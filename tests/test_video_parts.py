"""The parts of video processing, in process: sampling, track linking, the merge barrier in real
Redis, messages, and a whole video through `framefleet run`'s code path on a shared clip."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import MEDIA_DIR, MODEL_DIR

from framefleet.core.documents import FrameResult, VideoDocument, read_document
from framefleet.core.errors import ConfigError
from framefleet.core.jobrecord import JobStatus
from framefleet.core.messages import VideoMerge, VideoPlan, VideoSegment
from framefleet.core.outputs import annotated_key, frames_key, parts_prefix, report_key, result_key
from framefleet.core.results import Detections
from framefleet.core.sampling import Sampling
from framefleet.core.storage import open_storage
from framefleet.inference.loaded import load_model
from framefleet.inference.video.frames import decode
from framefleet.inference.video.links import TrackLinker
from framefleet.inference.video.plan import merge_message, plan_segments
from framefleet.inference.video.probe import probe
from framefleet.inference.video.segment import process_segment
from framefleet.inference.video.whole import process_video
from framefleet.report.summary import write_report
from framefleet.state.jobs import JobStore
from framefleet.state.videos import SegmentOutcome, VideoStore

CLIP = MEDIA_DIR / "video" / "parking_lot_person_bicycle_car_480x270_mp4v.mp4"


@pytest.mark.parametrize(
    ("sampling", "fps", "want"),
    [
        pytest.param(Sampling(), 10.0, list(range(12)), id="all"),
        pytest.param(Sampling(every=5), 10.0, [0, 5, 10], id="every-5"),
        pytest.param(Sampling(fps=2.5), 10.0, [0, 4, 8], id="fps-2.5-of-10"),
        pytest.param(Sampling(fps=5), 12.5, [0, 3, 5, 8, 10], id="fps-5-of-12.5"),
        pytest.param(Sampling(fps=30), 10.0, list(range(12)), id="fps-above-video"),
    ],
)
def test_sampling_depends_only_on_the_frame_index(
    sampling: Sampling, fps: float, want: list[int]
) -> None:
    assert [i for i in range(12) if sampling.picks(i, fps)] == want
    # before(): the warm-up start of a segment, counted in sampled frames
    assert sampling.before(want[-1], 2, fps) == want[-3]
    assert sampling.before(1, 10, fps) == 0


def test_sampling_refuses_bad_values() -> None:
    with pytest.raises(ConfigError, match="--every"):
        Sampling(every=0)
    with pytest.raises(ConfigError, match="--fps"):
        Sampling(fps=-1)


def box(x: float) -> list[float]:
    return [x, 10, x + 50, 110]


def dets(xs: list[float], ids: list[int], cls: int = 0) -> Detections:
    return Detections(
        xyxy=np.array([box(x) for x in xs]).reshape(-1, 4),
        confidence=np.full(len(xs), 0.9),
        class_id=np.full(len(xs), cls),
        tracker_id=np.array(ids),
    )


def test_linker_keeps_ids_across_segments_and_numbers_new_tracks() -> None:
    linker = TrackLinker()
    linker.start_segment()
    assert linker.owned(0, dets([0, 300], [7, 9])).tracker_id.tolist() == [1, 2]
    assert linker.owned(1, dets([5, 305], [7, 9])).tracker_id.tolist() == [1, 2]
    # segment 2: its own ids (1, 2 swapped) for the same objects, plus a newcomer
    linker.start_segment()
    linker.overlap(1, dets([5, 305], [2, 1]))
    assert linker.owned(2, dets([10, 310, 600], [2, 1, 3])).tracker_id.tolist() == [1, 2, 3]
    # another class at the same place is not the same object; -1 stays untracked
    linker.start_segment()
    linker.overlap(2, dets([10], [1], cls=5))
    assert linker.owned(3, dets([10, 20], [1, -1], cls=5)).tracker_id.tolist() == [4, -1]


def test_detections_tracker_id_round_trips() -> None:
    d = dets([0, 1], [3, -1])
    back = Detections.from_json(json.loads(json.dumps(d.to_json())))
    assert back.tracker_id is not None
    assert back.tracker_id.tolist() == [3, -1]
    assert d[np.array([False, True])].tracker_id.tolist() == [-1]
    assert Detections.from_json(Detections.empty().to_json()).tracker_id is None
    with pytest.raises(ValueError, match="tracker_id"):
        Detections(
            xyxy=np.zeros((1, 4)), confidence=[1.0], class_id=[0], tracker_id=np.array([1, 2])
        )


def test_frame_result_lines_round_trip() -> None:
    line = FrameResult(12, 1.2, dets([0], [1]), segment=3, worker="h:1")
    again = FrameResult.from_json(json.loads(json.dumps(line.to_json())))
    assert (again.frame, again.t, again.segment, again.worker, again.skipped) == (
        12,
        1.2,
        3,
        "h:1",
        "",
    )
    skipped = FrameResult(13, 1.3, None, skipped="static").to_json()
    assert "results" not in skipped
    assert skipped["skipped"] == "static"


def test_video_messages_round_trip_and_validate() -> None:
    plan = VideoPlan(
        job_id="j",
        input_uri="s3://in/",
        output_uri="s3://out/",
        model="m",
        item="a.mp4",
        segment_seconds=2,
        every=3,
        skip_static=True,
    )
    assert VideoPlan.decode(plan.encode()) == plan
    video = probe(CLIP, "clip")
    segments = plan_segments(plan, video)
    assert [(s.warm_frame, s.start_frame, s.end_frame) for s in segments] == [
        (0, 0, 25),
        (15, 25, 41),  # 4 sampled frames (every 3rd) before 25: 24, 21, 18, 15
    ]
    assert all(VideoSegment.decode(s.encode()) == s for s in segments)
    assert [s.unit.id for s in segments] == ["a.mp4#0", "a.mp4#1"]
    merge = merge_message(plan, video)
    assert VideoMerge.decode(merge.encode()) == merge
    assert (merge.segments, merge.segment_frames, merge.frames, merge.width, merge.codec) == (
        2,
        25,
        41,
        480,
        "mpeg4",
    )
    with pytest.raises(Exception, match="segment_no"):
        VideoSegment.decode({**segments[0].encode(), "segment_no": 2})
    with pytest.raises(Exception, match="skip_static"):
        VideoPlan.decode({**plan.encode(), "skip_static": 1})


def test_merge_barrier_fires_once_and_a_failed_segment_fails_the_video(job_store: JobStore) -> None:
    videos = VideoStore(job_store)
    job_id = job_store.create("file:///in/", "file:///out/", "yolox-nano")
    job_store.add_items(job_id, 2)
    job_store.finish_listing(job_id)
    plan = VideoPlan(
        job_id=job_id,
        input_uri="file:///in/",
        output_uri="file:///out/",
        model="yolox-nano",
        item="a.mp4",
        segment_seconds=2,
    )
    merge = merge_message(plan, probe(CLIP, "clip"))
    videos.plan(job_id, "a.mp4", merge)
    videos.plan(job_id, "b.mp4", merge)
    assert videos.record(job_id, "a.mp4", 0, ok=True, frames=25) is SegmentOutcome.NOTHING
    assert (
        videos.record(job_id, "a.mp4", 0, ok=True, frames=25) is SegmentOutcome.NOTHING
    )  # redelivered
    assert videos.record(job_id, "a.mp4", 1, ok=True, frames=16) is SegmentOutcome.MERGE
    assert videos.record(job_id, "a.mp4", 1, ok=True, frames=16) is SegmentOutcome.NOTHING  # once
    assert videos.merge_message(job_id, "a.mp4") == merge
    # b: one segment fails -> the video is failed in the job, in the same script; no merge after
    assert videos.record(job_id, "b.mp4", 0, ok=True, frames=25) is SegmentOutcome.NOTHING
    reason = {"item": "b.mp4", "error": "VideoOpenError", "message": "segment 1: corrupt"}
    assert videos.record(job_id, "b.mp4", 1, ok=False, reason=reason) is SegmentOutcome.FAILED
    assert videos.record(job_id, "b.mp4", 1, ok=True) is SegmentOutcome.NOTHING
    assert dict(job_store.failures(job_id))["b.mp4"]["message"] == "segment 1: corrupt"
    record = job_store.get(job_id)
    by_item = {v.item: v for v in record.videos}
    assert (
        by_item["a.mp4"].segments_done,
        by_item["a.mp4"].segments_total,
        by_item["a.mp4"].frames_done,
    ) == (2, 2, 41)
    assert (by_item["b.mp4"].state, by_item["b.mp4"].error) == ("failed", "segment 1: corrupt")
    assert record.status is JobStatus.RUNNING  # a.mp4 is not merged yet
    assert job_store.record(job_id, "a.mp4", ok=True, frames=41)  # the merge completes the job
    videos.settle(job_id, "a.mp4", merged=True)
    assert videos.video(job_id, "a.mp4").state == "merged"
    assert job_store.get(job_id).to_json()["videos"][0]["segments_total"] == 2


def test_whole_video_in_process_writes_h264_and_lines(tmp_path: Path) -> None:
    model = load_model("yolox-nano", model_dir=MODEL_DIR, download=False)
    src, dst = open_storage(str(CLIP.parent)), open_storage(str(tmp_path / "out"))
    result = process_video(CLIP.name, src, dst, model, Sampling(every=2, skip_static=True))
    assert result.ok, result.message
    doc = read_document(dst.read_bytes(result_key(CLIP.name)))
    assert isinstance(doc, VideoDocument)
    lines = list(doc.frame_results(dst.read_bytes))
    assert [line.frame for line in lines] == list(range(0, 41, 2))
    assert doc.summary.sampled_frames == 21
    assert doc.summary.inferred_frames + doc.summary.skipped_static == 21
    assert all((line.results is None) == (line.skipped == "static") for line in lines)
    assert doc.summary.classes["car"] > 0
    assert dst.exists(frames_key(CLIP.name))
    with av.open(str(tmp_path / "out" / annotated_key(CLIP.name, video=True))) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.frames, stream.width) == ("h264", 41, 480)
    assert not list(dst.list("_framefleet/parts/"))


def test_a_segment_on_s3_reads_only_its_part_of_the_object(s3_server) -> None:
    """Ranged reads: the container's index and the segment's packets, not the whole object."""
    name = "intel_one-by-one-person-detection.mp4"  # 3.3 MB, 1394 frames, a keyframe every 10
    local = MEDIA_DIR / "video" / name
    s3_server.create_bucket("ranged")
    store = open_storage("s3://ranged/v/")
    store.write_bytes(name, local.read_bytes())
    video = probe(local, name)
    start, end = 700, 720
    with store.open_read(name) as reader:
        remote = list(decode(reader, name, start, video.pts[start], end, 1))
        fetched = reader.raw.fetched
    here = list(decode(local, name, start, video.pts[start], end, 1))
    assert [f.index for f in remote] == list(range(start, end))
    assert all(np.array_equal(a.image, b.image) for a, b in zip(remote, here, strict=True))
    assert fetched < local.stat().st_size / 3, fetched  # index + 20 frames, in 256 KiB blocks


def test_a_failed_video_leaves_no_parts_behind(job_store: JobStore, tmp_path: Path) -> None:
    # Segment 0 writes its part, segment 1 fails the video and that ends the job: the report
    # written at the end sweeps the part no merge will ever take.
    model = load_model("yolox-nano", model_dir=MODEL_DIR, download=False)
    src, dst = open_storage(str(CLIP.parent)), open_storage(str(tmp_path / "out"))
    job_id = job_store.create(src.uri, dst.uri, "yolox-nano")
    job_store.add_items(job_id, 1)
    job_store.finish_listing(job_id)
    plan = VideoPlan(
        job_id=job_id,
        input_uri=src.uri,
        output_uri=dst.uri,
        model="yolox-nano",
        item=CLIP.name,
        segment_seconds=2,
    )
    video = probe(CLIP, "clip")
    videos = VideoStore(job_store)
    videos.plan(job_id, CLIP.name, merge_message(plan, video))
    first = next(iter(plan_segments(plan, video)))
    assert process_segment(first, src, dst, model, 1).ok
    assert videos.record(job_id, CLIP.name, 0, ok=True, frames=25) is SegmentOutcome.NOTHING
    assert len(list(dst.list(parts_prefix(job_id)))) == 2  # its .mp4 and .jsonl
    reason = {"item": CLIP.name, "error": "VideoOpenError", "message": "segment 1: corrupt"}
    outcome = videos.record(job_id, CLIP.name, 1, ok=False, reason=reason)
    assert outcome is SegmentOutcome.FAILED_JOB_COMPLETE
    record = write_report(job_store, job_id)
    assert (record.status, record.failed) == (JobStatus.DONE, 1)
    assert not list(dst.list(parts_prefix(job_id)))
    assert dst.exists(report_key("summary.json"))
