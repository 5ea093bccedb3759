"""Queue messages: small, JSON-only, idempotent. They carry URIs and names, never pixels.

Every message names its job and a kind:

- ``image_batch``: several images of one job (spreads broker overhead over items);
- ``video_segment``: frames ``[start_frame, end_frame)`` of one video (``end_frame`` None: to
  the end).

Outputs go to keys derived only from the message, so a redelivered message overwrites its own
results instead of adding new ones.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, ClassVar, Self

from framefleet.core.errors import JobDecodeError

MESSAGE_VERSION = 1
"""Version of the message layout; a worker refuses messages of another version."""


class _Message:
    """What every message kind shares: JSON encoding with kind and version, strict decoding."""

    kind: ClassVar[str]

    def encode(self) -> dict[str, Any]:
        """The JSON-ready message."""
        body = asdict(self)  # type: ignore[call-overload]
        if "items" in body:
            body["items"] = list(body["items"])
        return {"v": MESSAGE_VERSION, "kind": self.kind, **body}

    @classmethod
    def decode(cls, message: Any) -> Self:
        """Parse a message made by `encode`.

        Raises:
            JobDecodeError: not a dict, wrong kind or version, missing or mistyped fields.
        """
        return cls._build(_decode(cls, message))

    @classmethod
    def _build(cls, values: dict[str, Any]) -> Self:
        """Checks beyond field types; the default builds the message as it is."""
        return cls(**values)


@dataclass(frozen=True)
class ImageBatch(_Message):
    """Images ``items`` (keys relative to ``input_uri``) of job ``job_id``, run with ``model``.

    Example:
        >>> job = ImageBatch("j1", 0, "s3://in/", "s3://out/", "yolox-nano", ("a.jpg",))
        >>> ImageBatch.decode(job.encode()) == job
        True
    """

    kind: ClassVar[str] = "image_batch"

    job_id: str
    batch_no: int
    input_uri: str
    output_uri: str
    model: str
    items: tuple[str, ...]
    attempt: int = 0
    engine: str = ""
    """The job's own engine choice (``submit --engine``); empty: the worker's, then the
    registry entry's."""

    @classmethod
    def _build(cls, values: dict[str, Any]) -> ImageBatch:
        items = values.get("items")
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items) or not items:
            raise JobDecodeError(
                f"{cls.kind} message needs a non-empty list of item keys, got {items!r}"
            )
        values["items"] = tuple(items)
        return cls(**values)

    def describe(self) -> str:
        """What monitors show as the task's arguments: ids and counts, never URIs (which may
        carry credentials or presigned query strings)."""
        retry = f", attempt {self.attempt}" if self.attempt else ""
        n = len(self.items)
        return (
            f"{n} image{'s' if n != 1 else ''}, {self.model}, job {self.job_id}, "
            f"batch {self.batch_no}{retry}"
        )

    def with_items(self, items: tuple[str, ...], attempt: int) -> ImageBatch:
        """The same batch restricted to ``items``: what a retry resends."""
        return ImageBatch(**{**asdict(self), "items": items, "attempt": attempt})


@dataclass(frozen=True)
class VideoSegment(_Message):
    """Frames ``[start_frame, end_frame)`` of video ``item`` of job ``job_id``."""

    kind: ClassVar[str] = "video_segment"

    job_id: str
    segment_no: int
    input_uri: str
    output_uri: str
    model: str
    item: str
    start_frame: int = 0
    end_frame: int | None = None
    attempt: int = 0
    engine: str = ""

    @classmethod
    def _build(cls, values: dict[str, Any]) -> VideoSegment:
        job = cls(**values)
        if job.start_frame < 0 or (job.end_frame is not None and job.end_frame <= job.start_frame):
            raise JobDecodeError(
                f"video segment frames must satisfy 0 <= start < end, got "
                f"[{job.start_frame}, {job.end_frame})"
            )
        return job

    def describe(self) -> str:
        """What monitors show as the task's arguments (see `ImageBatch.describe`)."""
        end = "end" if self.end_frame is None else str(self.end_frame)
        retry = f", attempt {self.attempt}" if self.attempt else ""
        return (
            f"1 video, frames [{self.start_frame}, {end}), {self.model}, job {self.job_id}, "
            f"segment {self.segment_no}{retry}"
        )

    def with_items(self, items: tuple[str, ...], attempt: int) -> VideoSegment:
        """A retry of this segment (a segment has exactly one item)."""
        return VideoSegment(**{**asdict(self), "attempt": attempt})

    @property
    def items(self) -> tuple[str, ...]:
        """The one video this segment reads."""
        return (self.item,)


Message = ImageBatch | VideoSegment
"""Any task message."""

_TYPES: dict[str, Any] = {"int": int, "str": str, "int | None": (int, type(None))}


def _decode(cls: Any, message: Any) -> dict[str, Any]:
    if not isinstance(message, dict):
        raise JobDecodeError(f"a job message must be a JSON object, got {type(message).__name__}")
    if message.get("v") != MESSAGE_VERSION:
        raise JobDecodeError(
            f"job message version {message.get('v')!r} is not {MESSAGE_VERSION}; "
            "producer and workers run different framefleet versions"
        )
    if message.get("kind") != cls.kind:
        raise JobDecodeError(f"expected a {cls.kind!r} message, got kind {message.get('kind')!r}")
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in message:
            if f.default is not MISSING:
                continue
            raise JobDecodeError(f"{cls.kind} message lacks the field {f.name!r}")
        value = message[f.name]
        expected = _TYPES.get(str(f.type))
        if expected is not None and (not isinstance(value, expected) or isinstance(value, bool)):
            raise JobDecodeError(
                f"{cls.kind} field {f.name!r} must be {f.type}, "
                f"got {type(value).__name__} {value!r}"
            )
        values[f.name] = value
    return values
