"""Run one video segment: decode, sample, infer, track, and write its results and annotated part.

A segment reads only what it needs (a local file in place; S3 by ranged reads: the container's
index and its own packets) and decodes from the keyframe before its warm-up frames. It runs its
own tracker over the sampled warm-up frames (written as ``overlap`` lines, which the merge uses
only to link this segment's tracks with the previous segment's), then over its own frames
``[start, end)``: each sampled frame becomes one JSON line (absolute frame index, timestamp,
results or why it was skipped), and every frame of the range goes into the H.264 part,
annotated with the latest results. Both go to deterministic keys
(`framefleet.core.outputs.part_key`), so a redelivered segment overwrites its own part.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import av
import cv2
import numpy as np

from framefleet.core import defaults
from framefleet.core.documents import FrameResult
from framefleet.core.errors import VideoOpenError
from framefleet.core.messages import VideoSegment
from framefleet.core.outputs import part_key
from framefleet.core.results import Detections
from framefleet.core.storage import Storage
from framefleet.inference.loaded import LoadedModel
from framefleet.inference.models.base import Image
from framefleet.inference.pipeline import ItemResult, Stopwatch, class_counts, failure, worker_id
from framefleet.inference.video.encode import H264Writer
from framefleet.inference.video.fetch import Source, open_container, video_source
from framefleet.inference.video.frames import decode
from framefleet.inference.video.probe import stream_rate
from framefleet.inference.video.tracking import tracker_for


class MotionGate:
    """Says whether a frame differs enough from the last inferred one to be worth inferring."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._last: np.ndarray[Any, np.dtype[np.uint8]] | None = None

    def static(self, image: Image) -> bool:
        """True if ``image`` is within the threshold of the last frame passed as not static."""
        h, w = image.shape[:2]
        small = cv2.resize(image, (64, max(1, round(64 * h / w))), interpolation=cv2.INTER_AREA)
        grey = np.asarray(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), np.uint8)
        if self._last is not None and float(cv2.absdiff(grey, self._last).mean()) < self.threshold:
            return True
        self._last = grey
        return False


def process_segment(
    job: VideoSegment, src: Storage, dst: Storage, model: LoadedModel, threads: int = 1
) -> ItemResult:
    """Process segment ``job`` of a video in ``src``; write its part files to ``dst``.

    Returns an `ItemResult` whose item is the segment's unit id (``clip.mp4#3``); a bad video
    is a failed result, never an exception.
    """
    watch = Stopwatch()
    unit = job.unit.id
    try:
        with (
            video_source(src, job.item) as path,
            tempfile.TemporaryDirectory(prefix="framefleet-segment-") as tmp,
        ):
            video, lines = Path(tmp) / "part.mp4", Path(tmp) / "part.jsonl"
            with watch.stage("infer"), lines.open("w") as out:
                counts = _run(job, path, src.uri_for(job.item), model, video, out, threads)
            with watch.stage("write"):
                dst.upload(video, part_key(job.job_id, job.item, job.segment_no, "mp4"))
                dst.upload(lines, part_key(job.job_id, job.item, job.segment_no, "jsonl"))
    except Exception as exc:  # a bad video is one failed unit, never a dead worker
        return failure(unit, exc, watch.ms)
    inferred, classes = counts
    return ItemResult(
        item=unit, ok=True, classes=dict(classes), frames=inferred, timings_ms=watch.ms
    )


def _run(
    job: VideoSegment,
    path: Source,
    name: str,
    model: LoadedModel,
    video: Path,
    out: IO[str],
    threads: int,
) -> tuple[int, Counter[str]]:
    try:
        with open_container(path) as container:
            stream = container.streams.video[0]
            fps = stream_rate(stream)
            width, height = stream.codec_context.width, stream.codec_context.height
    except (av.FFmpegError, IndexError) as exc:
        raise VideoOpenError(f"cannot open {name} as a video: {exc}") from exc
    sampling = job.sampling
    # ByteTrack keeps a lost track for a number of frames scaled by the rate it is fed at.
    sampled_rate = (
        float(fps) / sampling.every if sampling.fps <= 0 else min(float(fps), sampling.fps)
    )
    tracker = tracker_for(model.spec.task, sampled_rate)
    gate = MotionGate(defaults.STATIC_THRESHOLD) if sampling.skip_static else None
    held = Detections.empty()
    classes: Counter[str] = Counter()
    inferred = 0
    worker = worker_id()
    with H264Writer(video, Fraction(fps), width, height, threads) as writer:
        for frame in decode(path, name, job.first_frame, job.warm_pts, job.end_frame, threads):
            owned = frame.index >= job.start_frame
            if sampling.picks(frame.index, float(fps)):
                results: Detections | None = None
                if gate is None or not gate.static(frame.image):
                    results = held = tracker.update(model.adapter(frame.image))
                    if owned:
                        inferred += 1
                        classes.update(class_counts(held, model.adapter.label, model.info.task))
                line = FrameResult(
                    frame=frame.index,
                    t=frame.t,
                    results=results,
                    skipped="" if results is not None else "static",
                    segment=job.segment_no,
                    worker=worker,
                    overlap=not owned,
                )
                out.write(json.dumps(line.to_json()) + "\n")
            if owned:
                writer.write(model.annotate(frame.image, held))  # annotators by task
    return inferred, classes
