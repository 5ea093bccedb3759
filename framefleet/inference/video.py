"""Run one video segment: frames ``[start_frame, end_frame)`` through the model, per frame.

OpenCV reads video from files only, so the segment's video is copied to a temporary file first.
The annotated segment is written as mp4v (OpenCV's wheels cannot write H.264).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import cast

import cv2

from framefleet.core.documents import FrameResult, VideoDocument
from framefleet.core.errors import VideoOpenError
from framefleet.core.messages import VideoSegment
from framefleet.core.outputs import annotated_key, result_key
from framefleet.core.storage import Storage
from framefleet.inference.loaded import LoadedModel
from framefleet.inference.models.base import Image
from framefleet.inference.pipeline import (
    ItemResult,
    Stopwatch,
    class_counts,
    failure,
    worker_id,
)


def process_segment(
    job: VideoSegment, src: Storage, dst: Storage, model: LoadedModel
) -> ItemResult:
    """Run ``model`` over the segment's frames and write the annotated video and its results."""
    watch = Stopwatch()
    try:
        with tempfile.TemporaryDirectory(prefix="framefleet-video-") as tmp:
            local_in = Path(tmp) / ("input" + os.path.splitext(job.item)[1])
            local_out = Path(tmp) / "annotated.mp4"
            with watch.stage("read"):
                local_in.write_bytes(src.read_bytes(job.item))
            with watch.stage("infer"):
                frames, info, classes = _run_frames(job, str(local_in), str(local_out), model, src)
            w, h, fps, total = info
            document = VideoDocument(
                source=src.uri_for(job.item),
                model=model.info,
                width=w,
                height=h,
                fps=fps,
                frames=total,
                frame_results=frames,
                start_frame=job.start_frame,
                end_frame=job.end_frame,
                timings_ms=watch.ms,
                worker=worker_id(),
                created_at=time.time(),
            )
            with watch.stage("write"):
                dst.write_bytes(annotated_key(job.item, video=True), local_out.read_bytes())
                dst.write_bytes(result_key(job.item), json.dumps(document.to_json()).encode())
    except Exception as exc:  # a bad video is one failed item, never a dead worker
        return failure(job.item, exc, watch.ms)
    return ItemResult(
        item=job.item, ok=True, classes=dict(classes), frames=len(frames), timings_ms=watch.ms
    )


def _run_frames(
    job: VideoSegment, path: str, out_path: str, model: LoadedModel, src: Storage
) -> tuple[list[FrameResult], tuple[int, int, float, int], Counter[str]]:
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise VideoOpenError(
            f"OpenCV {cv2.__version__} cannot open {src.uri_for(job.item)} as a video; check that "
            "it is a video OpenCV's FFmpeg reads (MP4/H.264, AVI, MKV, GIF...)"
        )
    writer: cv2.VideoWriter | None = None
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if job.start_frame:
            cap.set(cv2.CAP_PROP_POS_FRAMES, job.start_frame)
        frames: list[FrameResult] = []
        classes: Counter[str] = Counter()
        index = job.start_frame
        w = h = 0
        while job.end_frame is None or index < job.end_frame:
            ok, raw = cap.read()
            if not ok:
                break
            frame = cast(Image, raw)
            detections = model.adapter(frame)
            classes.update(class_counts(detections, model.adapter.label))
            frames.append(FrameResult(index, detections))
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(out_path, cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
            writer.write(model.annotate(frame, detections))
            index += 1
        if not frames:
            raise VideoOpenError(
                f"{src.uri_for(job.item)} has no decodable frame in [{job.start_frame}, "
                f"{job.end_frame if job.end_frame is not None else 'end'}); the file may be "
                "truncated or use a codec OpenCV's FFmpeg lacks"
            )
        return frames, (int(w), int(h), float(fps), total), classes
    finally:
        cap.release()
        if writer is not None:
            writer.release()
