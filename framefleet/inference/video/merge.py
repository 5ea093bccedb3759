"""Merge a video's segments: one H.264 video, one JSON Lines results file, one document.

Runs once per video, when the job state says its last segment is recorded. It streams the
parts' JSON lines in segment order (never the whole video's results in memory), links track ids
across segments, and checks that the owned lines are exactly the video's sampled frames, each
once and in order: a gap or a repeat fails the merge, and nothing is published. The outputs are
written video first and document last, so a document's presence means the video is whole.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from framefleet.core.documents import (
    FrameResult,
    ModelInfo,
    SegmentInfo,
    VideoDocument,
    VideoSummary,
)
from framefleet.core.errors import InputError
from framefleet.core.messages import VideoMerge
from framefleet.core.outputs import annotated_key, frames_key, part_key, result_key
from framefleet.core.storage import Storage
from framefleet.inference.pipeline import ItemResult, Stopwatch, failure, worker_id
from framefleet.inference.video.encode import join_parts
from framefleet.inference.video.links import TrackLinker


class MergeError(InputError):
    """The segments of a video do not add up to the whole video."""


@dataclass
class _Tally:
    """The `VideoSummary`, gathered line by line."""

    sampled: int = 0
    inferred: int = 0
    skipped: int = 0
    classes: Counter[str] = field(default_factory=Counter)
    workers: Counter[str] = field(default_factory=Counter)
    tracks: dict[int, dict[str, Any]] = field(default_factory=dict)
    timeline: defaultdict[int, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, line: FrameResult, labels: list[str]) -> None:
        self.sampled += 1
        self.workers[line.worker] += 1
        detections = line.results
        if detections is None:
            self.skipped += 1
            return
        self.inferred += 1
        names = [labels[c] if 0 <= c < len(labels) else f"class_{c}" for c in detections.class_id]
        per_frame = Counter(names)
        self.classes.update(per_frame)
        second = self.timeline[math.floor(line.t)]
        for name, n in per_frame.items():
            second[name] = max(second[name], n)
        if detections.tracker_id is None:
            return
        for track, name in zip(detections.tracker_id.tolist(), names, strict=True):
            if track < 0:
                continue
            entry = self.tracks.setdefault(
                track, {"class": name, "first_frame": line.frame, "frames": 0}
            )
            entry["last_frame"] = line.frame
            entry["frames"] += 1

    def summary(self) -> VideoSummary:
        return VideoSummary(
            sampled_frames=self.sampled,
            inferred_frames=self.inferred,
            skipped_static=self.skipped,
            classes=dict(self.classes.most_common()),
            frames_by_worker=dict(self.workers),
            tracks=dict(sorted(self.tracks.items())),
            timeline=[
                {"second": s, "objects": dict(self.timeline[s])} for s in sorted(self.timeline)
            ],
        )


def merge_video(
    job: VideoMerge, dst: Storage, source: str, model: ModelInfo, labels: list[str]
) -> ItemResult:
    """Merge the parts of ``job``'s video in ``dst`` into its outputs there.

    Args:
        source: URI of the input video (for the document). model: the document's model entry.
        labels: class names by id.
    """
    watch = Stopwatch()
    try:
        with tempfile.TemporaryDirectory(prefix="framefleet-merge-") as tmp:
            folder = Path(tmp)
            with watch.stage("read"):
                for k in range(job.segments):
                    for ext in ("mp4", "jsonl"):
                        dst.download(part_key(job.job_id, job.item, k, ext), folder / f"{k}.{ext}")
            with watch.stage("merge"):
                with (folder / "frames.jsonl").open("w") as out:
                    tally = _merge_lines(job, folder, out, labels)
                starts = [k * job.segment_frames for k in range(job.segments)]
                frames = join_parts(
                    [(folder / f"{k}.mp4", start) for k, start in enumerate(starts)],
                    folder / "video.mp4",
                )
                if frames != job.frames:
                    raise MergeError(
                        f"{source}: the segments' videos hold {frames} frames, the video has "
                        f"{job.frames}; not published"
                    )
            document = VideoDocument(
                source=source,
                model=model,
                width=job.width,
                height=job.height,
                fps=job.fps,
                frames=job.frames,
                header_frames=job.header_frames,
                codec=job.codec,
                frames_file=frames_key(job.item),
                summary=tally.summary(),
                segments=[
                    SegmentInfo(k, start, min(start + job.segment_frames, job.frames))
                    for k, start in enumerate(starts)
                ],
                sampling=job.sampling.to_json(),
                timings_ms=watch.ms,
                worker=worker_id(),
                created_at=time.time(),
            )
            with watch.stage("write"):
                dst.upload(folder / "video.mp4", annotated_key(job.item, video=True))
                dst.upload(folder / "frames.jsonl", frames_key(job.item))
                dst.write_bytes(result_key(job.item), json.dumps(document.to_json()).encode())
    except Exception as exc:  # a video that cannot be merged is one failed item
        return failure(job.item, exc, watch.ms)
    return ItemResult(
        item=job.item,
        ok=True,
        classes=dict(tally.classes),
        frames=tally.inferred,
        timings_ms=watch.ms,
        document=document,
    )


def delete_parts(job_id: str, item: str, segments: Iterable[int], dst: Storage) -> None:
    """Remove the parts of ``segments`` of video ``item``: all of them once the merged outputs
    are published, or one that finished after its video had failed."""
    for k in segments:
        for ext in ("mp4", "jsonl"):
            dst.delete(part_key(job_id, item, k, ext))


def _merge_lines(job: VideoMerge, folder: Path, out: IO[str], labels: list[str]) -> _Tally:
    """Write the linked owned lines of every part in order, checking each sampled frame is there
    exactly once."""
    expected = _sampled(job)
    linker = TrackLinker()
    tally = _Tally()
    for k in range(job.segments):
        linker.start_segment()
        with (folder / f"{k}.jsonl").open() as lines:
            for raw in lines:
                line = FrameResult.from_json(json.loads(raw))
                if line.overlap:
                    if line.results is not None:
                        linker.overlap(line.frame, line.results)
                    continue
                want = next(expected, None)
                if line.frame != want:
                    raise MergeError(
                        f"segment {k} of {job.item} has frame {line.frame} where frame {want} "
                        "was due (a gap or a repeat between segments); not published"
                    )
                if line.results is not None:
                    line = FrameResult(
                        frame=line.frame,
                        t=line.t,
                        results=linker.owned(line.frame, line.results),
                        segment=line.segment,
                        worker=line.worker,
                    )
                tally.add(line, labels)
                out.write(json.dumps(line.to_json()) + "\n")
    left = next(expected, None)
    if left is not None:
        raise MergeError(f"{job.item}: no segment has sampled frame {left}; not published")
    return tally


def _sampled(job: VideoMerge) -> Iterator[int]:
    sampling = job.sampling
    return (i for i in range(job.frames) if sampling.picks(i, job.fps))
