"""Queue messages: small, JSON-only, idempotent. They carry URIs and names, never pixels.

Every message names its job and a kind:

- ``image_batch``: several images of one job (spreads broker overhead over items);
- ``video_plan``: one video, to be probed and split into segments by a worker (the producer
  never opens a video);
- ``video_segment``: frames ``[start_frame, end_frame)`` of one video (``end_frame`` None: to
  the end), plus warm-up frames before it for its tracker;
- ``video_merge``: join the parts of one video once its last segment is recorded.

Units of work have one identity, `Unit`: an image is ``Unit(item)``, a segment is
``Unit(item, segment)``. Messages, output keys, job-state counts and result documents use it.

Outputs go to keys derived only from the message, so a redelivered message overwrites its own
results instead of adding new ones.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, ClassVar, Self

from framefleet.core.errors import JobDecodeError
from framefleet.core.sampling import Sampling

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
class Unit:
    """One unit of work: an image or a whole video (``segment`` None), or one video segment.

    Example:
        >>> Unit("clips/a.mp4", 3).id
        'clips/a.mp4#3'
    """

    item: str
    segment: int | None = None

    @property
    def id(self) -> str:
        """The unit's id: the item key, then ``#`` and the segment number for a segment."""
        return self.item if self.segment is None else f"{self.item}#{self.segment}"


@dataclass(frozen=True, kw_only=True)
class _WholeVideo(_Message):
    """What the messages about a whole video share: where it is, and which frames are inferred
    (carried from the submission to the segments)."""

    job_id: str
    input_uri: str
    output_uri: str
    model: str
    item: str
    every: int = 1
    sample_fps: float = 0.0
    skip_static: bool = False
    attempt: int = 0
    engine: str = ""
    """The job's own engine choice, as `ImageBatch.engine`."""

    @property
    def sampling(self) -> Sampling:
        """Which frames are inferred."""
        return Sampling(every=self.every, fps=self.sample_fps, skip_static=self.skip_static)

    def describe(self) -> str:
        """What monitors show as the task's arguments (see `ImageBatch.describe`)."""
        retry = f", attempt {self.attempt}" if self.attempt else ""
        what = self.kind.removeprefix("video_")
        return f"1 video ({what}), {self.model}, job {self.job_id}{retry}"

    def with_items(self, items: tuple[str, ...], attempt: int) -> Self:
        """A retry of this message."""
        return type(self)(**{**asdict(self), "attempt": attempt})

    @property
    def items(self) -> tuple[str, ...]:
        """The one video."""
        return (self.item,)

    @property
    def unit(self) -> Unit:
        """The whole video."""
        return Unit(self.item)


@dataclass(frozen=True, kw_only=True)
class VideoPlan(_WholeVideo):
    """Probe video ``item`` and fan it out as segments of about ``segment_seconds``.

    Example:
        >>> plan = VideoPlan(job_id="j1", input_uri="s3://in/", output_uri="s3://out/",
        ...                  model="yolox-nano", item="a.mp4", segment_seconds=10.0)
        >>> VideoPlan.decode(plan.encode()) == plan
        True
    """

    kind: ClassVar[str] = "video_plan"

    segment_seconds: float

    @classmethod
    def _build(cls, values: dict[str, Any]) -> VideoPlan:
        plan = cls(**values)
        if plan.segment_seconds <= 0:
            raise JobDecodeError(f"segment_seconds must be positive, got {plan.segment_seconds}")
        plan.sampling  # noqa: B018  (validates every / sample_fps)
        return plan


@dataclass(frozen=True, kw_only=True)
class VideoMerge(_WholeVideo):
    """Join the ``segments`` parts of video ``item`` into its outputs.

    The plan fills it from its probe: ``frames`` frames at ``fps`` (``header_frames``: the
    header's claim), ``width`` × ``height``, decoder ``codec``; segment k starts at frame
    k × ``segment_frames``. The plan stores it with the video's segment state, and the segment
    whose record completes the video sends it.
    """

    kind: ClassVar[str] = "video_merge"

    segments: int
    segment_frames: int
    frames: int
    fps: float
    width: int
    height: int
    header_frames: int = 0
    codec: str = ""


@dataclass(frozen=True)
class VideoSegment(_Message):
    """Frames ``[start_frame, end_frame)`` of video ``item`` of job ``job_id``.

    The segment decodes from the keyframe before presentation timestamp ``warm_pts`` (the pts of
    frame ``warm_frame``), runs its tracker over the sampled frames from ``warm_frame`` on, and
    writes results and annotated frames only for ``[start_frame, end_frame)``. ``segments`` is
    how many segments the video has.
    """

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
    segments: int = 1
    warm_frame: int | None = None
    warm_pts: int | None = None
    every: int = 1
    sample_fps: float = 0.0
    skip_static: bool = False

    @classmethod
    def _build(cls, values: dict[str, Any]) -> VideoSegment:
        job = cls(**values)
        if job.start_frame < 0 or (job.end_frame is not None and job.end_frame <= job.start_frame):
            raise JobDecodeError(
                f"video segment frames must satisfy 0 <= start < end, got "
                f"[{job.start_frame}, {job.end_frame})"
            )
        if not 0 <= job.segment_no < job.segments:
            raise JobDecodeError(f"segment_no must be in [0, {job.segments}), got {job.segment_no}")
        if job.warm_frame is not None and not 0 <= job.warm_frame <= job.start_frame:
            raise JobDecodeError(
                f"warm_frame must be in [0, start_frame={job.start_frame}], got {job.warm_frame}"
            )
        job.sampling  # noqa: B018  (validates every / sample_fps)
        return job

    def describe(self) -> str:
        """What monitors show as the task's arguments (see `ImageBatch.describe`)."""
        end = "end" if self.end_frame is None else str(self.end_frame)
        retry = f", attempt {self.attempt}" if self.attempt else ""
        return (
            f"1 video, frames [{self.start_frame}, {end}), {self.model}, job {self.job_id}, "
            f"segment {self.segment_no}{retry}"
        )

    @property
    def sampling(self) -> Sampling:
        """Which frames are inferred."""
        return Sampling(every=self.every, fps=self.sample_fps, skip_static=self.skip_static)

    @property
    def first_frame(self) -> int:
        """The first frame decoded for results or tracking (the warm-up's start)."""
        return self.start_frame if self.warm_frame is None else self.warm_frame

    @property
    def unit(self) -> Unit:
        """This segment of the video."""
        return Unit(self.item, self.segment_no)

    def with_items(self, items: tuple[str, ...], attempt: int) -> VideoSegment:
        """A retry of this segment (a segment has exactly one item)."""
        return VideoSegment(**{**asdict(self), "attempt": attempt})

    @property
    def items(self) -> tuple[str, ...]:
        """The one video this segment reads."""
        return (self.item,)


Message = ImageBatch | VideoPlan | VideoSegment | VideoMerge
"""Any task message."""

_TYPES: dict[str, Any] = {
    "int": int,
    "str": str,
    "int | None": (int, type(None)),
    "float": (int, float),
    "bool": bool,
}


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
        if expected is not None and _mistyped(value, expected):
            raise JobDecodeError(
                f"{cls.kind} field {f.name!r} must be {f.type}, "
                f"got {type(value).__name__} {value!r}"
            )
        values[f.name] = float(value) if str(f.type) == "float" else value
    return values


def _mistyped(value: Any, expected: Any) -> bool:
    # bool is an int in Python; a JSON true is never a frame number, and 1 is never a flag.
    if expected is bool:
        return not isinstance(value, bool)
    return not isinstance(value, expected) or isinstance(value, bool)
