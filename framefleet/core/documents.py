"""Result documents: what framefleet writes next to each annotated output, as typed classes.

One document per input item (``a.jpg`` -> ``a.jpg.json``), the same whether a fleet worker, the
Python API or ``framefleet run`` made it. ``to_json`` gives the JSON-ready dict written to storage;
``from_json`` (or `read_document` for either kind) parses one back and refuses another schema.

    {"schema": 1, "kind": "image" | "video", "source": "s3://bucket/photos/a.jpg",
     "model": {"name", "task", "sha256", "engine", "engine_version"},
     "image": {"width", "height"}, "results": {…Detections…},               # kind image
     "video": {"width", "height", "fps", "frames", "header_frames", "codec"},  # kind video
     "sampling": {"every", "fps", "skip_static"},
     "segments": [{"segment", "start_frame", "end_frame"}, …],
     "frames_file": "clip.mp4.frames.jsonl",   # one `FrameResult` a line, every sampled frame
     "summary": {…`VideoSummary`…},
     "timings_ms": {stage: ms}, "worker": "host:pid", "created_at": 1790000000.0}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from framefleet.core.errors import DocumentError
from framefleet.core.results import SCHEMA_VERSION, Detections


@dataclass(frozen=True)
class ModelInfo:
    """What a document says about the model that made it.

    Attributes:
        name: registry name. task: detection, faces, classification or segmentation.
        sha256: digest of the model file that ran. engine: what ran it (``cv2.dnn``,
        ``onnxruntime``). engine_version: that library's version (``5.0.0``, ``1.32.0``).
    """

    name: str
    task: str
    sha256: str
    engine: str
    engine_version: str = ""

    def to_json(self) -> dict[str, str]:
        """The JSON-ready dict."""
        return {
            "name": self.name,
            "task": self.task,
            "sha256": self.sha256,
            "engine": self.engine,
            "engine_version": self.engine_version,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ModelInfo:
        """Parse `to_json`'s form (documents written before engine versions lack one)."""
        return cls(
            name=obj["name"],
            task=obj["task"],
            sha256=obj["sha256"],
            engine=obj["engine"],
            engine_version=obj.get("engine_version", ""),
        )


def _envelope(doc: ImageDocument | VideoDocument, body: dict[str, Any]) -> dict[str, Any]:
    """The fields every document kind has, around the kind's own ``body``."""
    return {
        "schema": SCHEMA_VERSION,
        "kind": doc.kind,
        "source": doc.source,
        "model": doc.model.to_json(),
        **body,
        "timings_ms": dict(doc.timings_ms),
        "worker": doc.worker,
        "created_at": doc.created_at,
    }


def _common(obj: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments of the fields every document kind has."""
    return {
        "source": obj["source"],
        "model": ModelInfo.from_json(obj["model"]),
        "timings_ms": {k: float(v) for k, v in obj.get("timings_ms", {}).items()},
        "worker": str(obj.get("worker", "")),
        "created_at": float(obj.get("created_at", 0.0)),
    }


@dataclass(frozen=True, eq=False)
class ImageDocument:
    """The result of one model on one image.

    Example:
        >>> doc = ImageDocument("file:///in/a.jpg", info, 768, 576, detections)
        >>> ImageDocument.from_json(doc.to_json()).results.class_id.tolist()
        [16, 1, 2]
    """

    kind: ClassVar[str] = "image"

    source: str
    model: ModelInfo
    width: int
    height: int
    results: Detections
    timings_ms: dict[str, float] = field(default_factory=dict)
    worker: str = ""
    created_at: float = 0.0
    warnings: tuple[str, ...] = ()
    """What the decoder said of damage it decoded through (libjpeg's "Corrupt JPEG data: ...");
    written only when there is some."""

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready dict written to ``<item>.json``."""
        body: dict[str, Any] = {
            "image": {"width": self.width, "height": self.height},
            "results": self.results.to_json(),
        }
        if self.warnings:
            body["warnings"] = list(self.warnings)
        return _envelope(self, body)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ImageDocument:
        """Parse an image document.

        Raises:
            DocumentError: another kind or schema version, or a missing or mistyped field.
        """
        with _parsing(obj, cls.kind):
            return cls(
                width=int(obj["image"]["width"]),
                height=int(obj["image"]["height"]),
                results=Detections.from_json(obj["results"]),
                warnings=tuple(str(w) for w in obj.get("warnings", ())),
                **_common(obj),
            )


@dataclass(frozen=True, eq=False)
class FrameResult:
    """The results of one sampled video frame: one line of a video's JSON Lines results file.

    Attributes:
        frame: index in the whole video (0-based). t: presentation time, seconds.
        results: the detections, None when the frame was not inferred (see ``skipped``).
        skipped: why it was not inferred (``"static"``: motion gating), else "".
        segment: the segment that made it; worker: the process that made it (``host:pid``).
        overlap: a segment's warm-up frame, owned by the previous segment (part files only).

    Example:
        >>> line = FrameResult(12, 1.2, detections, segment=0, worker="host:42")
        >>> FrameResult.from_json(line.to_json()).frame
        12
    """

    frame: int
    t: float = 0.0
    results: Detections | None = None
    skipped: str = ""
    segment: int = 0
    worker: str = ""
    overlap: bool = False

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready dict (one line of the results file)."""
        body: dict[str, Any] = {"frame": self.frame, "t": self.t}
        if self.results is not None:
            body["results"] = self.results.to_json()
        if self.skipped:
            body["skipped"] = self.skipped
        if self.overlap:
            body["overlap"] = True
        else:
            body.update(segment=self.segment, worker=self.worker)
        return body

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> FrameResult:
        """Parse `to_json`'s form."""
        results = obj.get("results")
        return cls(
            frame=int(obj["frame"]),
            t=float(obj.get("t", 0.0)),
            results=None if results is None else Detections.from_json(results),
            skipped=str(obj.get("skipped", "")),
            segment=int(obj.get("segment", 0)),
            worker=str(obj.get("worker", "")),
            overlap=bool(obj.get("overlap", False)),
        )


@dataclass(frozen=True)
class SegmentInfo:
    """Frames ``[start_frame, end_frame)`` of a video were segment ``segment``."""

    segment: int
    start_frame: int
    end_frame: int

    def to_json(self) -> dict[str, int]:
        """The JSON-ready dict."""
        return {
            "segment": self.segment,
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
        }


@dataclass(frozen=True)
class VideoSummary:
    """What a whole video held, per the merge.

    Attributes:
        sampled_frames: lines in the results file; inferred_frames: of those, inferred;
            skipped_static: not inferred by motion gating.
        classes: detections per class name over the inferred frames.
        frames_by_worker: sampled frames per worker process.
        tracks: track id -> {"class", "first_frame", "last_frame", "frames"}.
        timeline: objects per class over time: per second of video, the most objects of each
            class seen in one frame of that second, ``[{"second": 0, "objects": {...}}, …]``.
    """

    sampled_frames: int = 0
    inferred_frames: int = 0
    skipped_static: int = 0
    classes: dict[str, int] = field(default_factory=dict)
    frames_by_worker: dict[str, int] = field(default_factory=dict)
    tracks: dict[int, dict[str, Any]] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready dict."""
        return {
            "sampled_frames": self.sampled_frames,
            "inferred_frames": self.inferred_frames,
            "skipped_static": self.skipped_static,
            "classes": dict(self.classes),
            "frames_by_worker": dict(self.frames_by_worker),
            "tracks": {str(k): v for k, v in self.tracks.items()},
            "timeline": list(self.timeline),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> VideoSummary:
        """Parse `to_json`'s form."""
        return cls(
            sampled_frames=int(obj["sampled_frames"]),
            inferred_frames=int(obj["inferred_frames"]),
            skipped_static=int(obj["skipped_static"]),
            classes={str(k): int(v) for k, v in obj["classes"].items()},
            frames_by_worker={str(k): int(v) for k, v in obj["frames_by_worker"].items()},
            tracks={int(k): dict(v) for k, v in obj["tracks"].items()},
            timeline=list(obj["timeline"]),
        )


@dataclass(frozen=True, eq=False)
class VideoDocument:
    """The results of one model on a whole video, written by the merge of its segments.

    The per-frame results are not in the document but in ``frames_file`` (JSON Lines, one
    `FrameResult` a line, in frame order), so an hour of video never sits in memory as one list.

    Attributes:
        frames: frames in the video, counted from its packets (``header_frames``: what the
            container's header claims, 0 if it says nothing).
        sampling: which frames were inferred: {"every", "fps", "skip_static"}.
        segments: how the video was split across the fleet.
        frames_file: key of the results file, relative to the output root.
        summary: counts, tracks and objects per class over time.

    Example:
        >>> doc = read_document(storage.read_bytes("clips/walk.mp4.json"))
        >>> doc.summary.sampled_frames, len(doc.segments)
        (100, 5)
    """

    kind: ClassVar[str] = "video"

    source: str
    model: ModelInfo
    width: int
    height: int
    fps: float
    frames: int
    frames_file: str
    summary: VideoSummary
    segments: list[SegmentInfo] = field(default_factory=list)
    sampling: dict[str, Any] = field(default_factory=dict)
    header_frames: int = 0
    codec: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)
    worker: str = ""
    created_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready dict written to ``<item>.json``."""
        return _envelope(
            self,
            {
                "video": {
                    "width": self.width,
                    "height": self.height,
                    "fps": self.fps,
                    "frames": self.frames,
                    "header_frames": self.header_frames,
                    "codec": self.codec,
                },
                "sampling": dict(self.sampling),
                "segments": [s.to_json() for s in self.segments],
                "frames_file": self.frames_file,
                "summary": self.summary.to_json(),
            },
        )

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> VideoDocument:
        """Parse a video document.

        Raises:
            DocumentError: another kind or schema version, or a missing or mistyped field.
        """
        with _parsing(obj, cls.kind):
            video = obj["video"]
            return cls(
                width=int(video["width"]),
                height=int(video["height"]),
                fps=float(video["fps"]),
                frames=int(video["frames"]),
                header_frames=int(video.get("header_frames", 0)),
                codec=str(video.get("codec", "")),
                frames_file=str(obj["frames_file"]),
                summary=VideoSummary.from_json(obj["summary"]),
                segments=[SegmentInfo(**s) for s in obj.get("segments", [])],
                sampling=dict(obj.get("sampling", {})),
                **_common(obj),
            )

    def frame_results(self, read: Callable[[str], bytes]) -> Iterator[FrameResult]:
        """The per-frame results, streamed from ``frames_file`` via ``read`` (a storage's
        ``read_bytes``)."""
        for line in read(self.frames_file).splitlines():
            if line.strip():
                yield FrameResult.from_json(json.loads(line))


Document = ImageDocument | VideoDocument
"""Any result document."""


def read_document(data: bytes | str | dict[str, Any]) -> Document:
    """Parse a result document of either kind from its JSON (bytes, text or a parsed dict).

    Raises:
        DocumentError: not JSON, not a result document, or another schema version.

    Example:
        >>> doc = read_document(storage.read_bytes("photos/a.jpg.json"))
        >>> doc.kind, len(doc.results)
        ('image', 3)
    """
    if isinstance(data, dict):
        obj = data
    else:
        try:
            obj = json.loads(data)
        except ValueError as exc:
            raise DocumentError(f"a result document must be JSON: {exc}") from exc
    kind = obj.get("kind") if isinstance(obj, dict) else None
    if kind == ImageDocument.kind:
        return ImageDocument.from_json(obj)
    if kind == VideoDocument.kind:
        return VideoDocument.from_json(obj)
    raise DocumentError(f"a result document has kind 'image' or 'video', got {kind!r}")


@contextmanager
def _parsing(obj: Any, kind: str) -> Iterator[None]:
    """Check kind and schema; turn a missing or mistyped field into a `DocumentError`."""
    if not isinstance(obj, dict):
        raise DocumentError(f"a {kind} document must be a JSON object, got {type(obj).__name__}")
    if obj.get("kind") != kind:
        raise DocumentError(f"expected a {kind!r} document, got kind {obj.get('kind')!r}")
    if obj.get("schema") != SCHEMA_VERSION:
        raise DocumentError(
            f"result document schema {obj.get('schema')!r} is not {SCHEMA_VERSION}; it was "
            "written by another framefleet version"
        )
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DocumentError(f"malformed {kind} document: {type(exc).__name__} {exc}") from exc
