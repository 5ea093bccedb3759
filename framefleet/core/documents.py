"""Result documents: what framefleet writes next to each annotated output, as typed classes.

One document per input item (``a.jpg`` -> ``a.jpg.json``), the same whether a fleet worker, the
Python API or ``framefleet run`` made it. ``to_json`` gives the JSON-ready dict written to storage;
``from_json`` (or `read_document` for either kind) parses one back and refuses another schema.

    {"schema": 1, "kind": "image" | "video", "source": "s3://bucket/photos/a.jpg",
     "model": {"name", "task", "sha256", "engine", "engine_version"},
     "image": {"width", "height"}, "results": {…Detections…},               # kind image
     "video": {"width", "height", "fps", "frames"},                          # kind video
     "segment": {"start_frame", "end_frame"}, "frames": [{"frame", "results"}, …],
     "timings_ms": {stage: ms}, "worker": "host:pid", "created_at": 1790000000.0}
"""

from __future__ import annotations

import json
from collections.abc import Iterator
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

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready dict written to ``<item>.json``."""
        return _envelope(
            self,
            {
                "image": {"width": self.width, "height": self.height},
                "results": self.results.to_json(),
            },
        )

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
                **_common(obj),
            )


@dataclass(frozen=True, eq=False)
class FrameResult:
    """The results of one video frame; ``frame`` is its index in the whole video."""

    frame: int
    results: Detections

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready dict."""
        return {"frame": self.frame, "results": self.results.to_json()}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> FrameResult:
        """Parse `to_json`'s form."""
        return cls(frame=int(obj["frame"]), results=Detections.from_json(obj["results"]))


@dataclass(frozen=True, eq=False)
class VideoDocument:
    """The results of one model on frames ``[start_frame, end_frame)`` of a video.

    Attributes:
        frames: the container's frame count (``CAP_PROP_FRAME_COUNT``, which some files misstate).
        end_frame: None when the segment runs to the end of the video.
        frame_results: one `FrameResult` per processed frame, in frame order.
    """

    kind: ClassVar[str] = "video"

    source: str
    model: ModelInfo
    width: int
    height: int
    fps: float
    frames: int
    frame_results: list[FrameResult]
    start_frame: int = 0
    end_frame: int | None = None
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
                },
                "segment": {"start_frame": self.start_frame, "end_frame": self.end_frame},
                "frames": [f.to_json() for f in self.frame_results],
            },
        )

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> VideoDocument:
        """Parse a video document.

        Raises:
            DocumentError: another kind or schema version, or a missing or mistyped field.
        """
        with _parsing(obj, cls.kind):
            video, segment = obj["video"], obj.get("segment") or {}
            end = segment.get("end_frame")
            return cls(
                width=int(video["width"]),
                height=int(video["height"]),
                fps=float(video["fps"]),
                frames=int(video["frames"]),
                frame_results=[FrameResult.from_json(f) for f in obj["frames"]],
                start_frame=int(segment.get("start_frame", 0)),
                end_frame=None if end is None else int(end),
                **_common(obj),
            )


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
