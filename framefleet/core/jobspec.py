"""What was submitted, as one typed value: the job spec, stored once with the job.

`JobSpec` holds everything a job's messages need (where, which model and engine, how images are
batched, how videos are split and sampled) and how the job is run (force, fresh output, failure
budget, follow). `submit` and `follow` build it, store `JobSpec.encode` as the job's ``params``,
and every message of the job comes from `JobSpec.messages`, so submit, follow and retry cannot
send a video with different segments or sampling.

Stored layout (``params`` in the job hash, JSON)::

    {"v": 1, "input_uri": ..., "output_uri": ..., "model": ..., "engine": "",
     "batch_size": 8, "segment_seconds": 10.0,
     "sampling": {"every": 1, "fps": 0.0, "skip_static": false},
     "force": false, "fresh_output": false,
     "max_failure_rate": 1.0, "min_failure_sample": 20, "follow": false}

The keys are flat and keep their earlier names: the failure-budget Lua script
(`framefleet.state.control`) reads ``max_failure_rate`` and ``min_failure_sample`` from this
JSON, and workers read ``force`` and ``fresh_output``. Params written before the spec had a
version (no ``v``) decode with defaults for whatever they lack.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Self

from framefleet.core import defaults
from framefleet.core.errors import ConfigError, JobDecodeError
from framefleet.core.inputs import classify
from framefleet.core.jobrecord import JobRecord
from framefleet.core.messages import ImageBatch, Message, VideoPlan
from framefleet.core.sampling import Sampling
from framefleet.core.settings import Settings

SPEC_VERSION = 1
"""Version of the stored spec layout; `JobSpec.decode` refuses any other (params without a
version are the layout from before it, read as version 0)."""

_SCALARS: dict[str, type | tuple[type, ...]] = {
    "input_uri": str,
    "output_uri": str,
    "model": str,
    "engine": str,
    "batch_size": int,
    "segment_seconds": (int, float),
    "force": bool,
    "fresh_output": bool,
    "max_failure_rate": (int, float),
    "min_failure_sample": int,
    "follow": bool,
}
"""JSON types of the spec's scalar fields (``sampling`` is an object of its own)."""

_SAMPLING: dict[str, type | tuple[type, ...]] = {
    "every": int,
    "fps": (int, float),
    "skip_static": bool,
}


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """What a job was submitted with: enough to make any of its messages again.

    Args:
        input_uri: the input root (folder or prefix) the job's item keys are relative to.
        output_uri: the output root.
        model: the registry name of the model.
        engine: the job's own engine (``cv2.dnn``, ``onnxruntime``); empty: each worker's.
        batch_size: images per message.
        segment_seconds: videos are split into segments of about this many seconds.
        sampling: which video frames are inferred.
        force: redo items whose outputs are already complete.
        fresh_output: the output held nothing at submit: no earlier outputs to look for.
        max_failure_rate: share of failed items (0-1] above which the job is stopped early;
            1.0: never.
        min_failure_sample: items with an outcome before ``max_failure_rate`` may stop it.
        follow: the job follows its input (``submit --follow``).

    Raises:
        ConfigError: a value out of range (batch size below 1, segment length not positive,
            failure rate outside (0, 1], unknown engine).

    Example:
        >>> spec = JobSpec(input_uri="s3://in/", output_uri="s3://out/", model="yolox-nano")
        >>> JobSpec.decode(spec.encode()) == spec
        True
    """

    input_uri: str
    output_uri: str
    model: str
    engine: str = ""
    batch_size: int = defaults.BATCH_SIZE
    segment_seconds: float = defaults.SEGMENT_SECONDS
    sampling: Sampling = field(default_factory=Sampling)
    force: bool = False
    fresh_output: bool = False
    max_failure_rate: float = defaults.MAX_FAILURE_RATE
    min_failure_sample: int = defaults.MIN_FAILURE_SAMPLE
    follow: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1 image, got {self.batch_size}")
        if not (self.segment_seconds > 0 and math.isfinite(self.segment_seconds)):
            raise ConfigError(f"segment_seconds must be positive, got {self.segment_seconds}")
        if not 0 < self.max_failure_rate <= 1:
            raise ConfigError(
                f"max_failure_rate must be in (0, 1], e.g. 0.2 for 20%, got {self.max_failure_rate}"
            )
        if self.min_failure_sample < 1:
            raise ConfigError(
                f"min_failure_sample must be at least 1, got {self.min_failure_sample}"
            )
        if self.engine and self.engine not in defaults.ENGINES:
            raise ConfigError(
                f"unknown engine {self.engine!r}; choose one of {', '.join(defaults.ENGINES)}"
            )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        input_uri: str,
        output_uri: str,
        model: str,
        *,
        engine: str = "",
        sampling: Sampling | None = None,
        force: bool = False,
        follow: bool = False,
    ) -> JobSpec:
        """The spec of a new job: batch size, segment length and failure budget from
        ``settings``, the rest as given (``fresh_output`` is False; the submitter sets it once
        it has looked at the output).

        Example:
            >>> settings = Settings(segment_seconds=2.0)
            >>> JobSpec.from_settings(settings, "s3://i/", "s3://o/", "m").segment_seconds
            2.0
        """
        return cls(
            input_uri=input_uri,
            output_uri=output_uri,
            model=model,
            engine=engine,
            batch_size=settings.batch_size,
            segment_seconds=settings.segment_seconds,
            sampling=sampling or Sampling(),
            force=force,
            max_failure_rate=settings.max_failure_rate,
            min_failure_sample=settings.min_failure_sample,
            follow=follow,
        )

    @property
    def resume(self) -> bool:
        """True if workers look for complete earlier outputs and count those items as done
        without running them (neither ``force`` nor ``fresh_output``)."""
        return not (self.force or self.fresh_output)

    def encode(self) -> dict[str, Any]:
        """The JSON-ready spec, as the job hash keeps it in ``params`` (see the module doc)."""
        body: dict[str, Any] = {"v": SPEC_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            body[f.name] = value.to_json() if isinstance(value, Sampling) else value
        return body

    @classmethod
    def decode(cls, data: Any) -> Self:
        """Parse a spec made by `encode`, or the params of a job submitted before the spec
        was versioned (no ``v``: what it lacks takes its default).

        Raises:
            JobDecodeError: not a dict; a version other than `SPEC_VERSION`; a missing,
                unknown or mistyped field; a value out of range.
        """
        if not isinstance(data, Mapping):
            raise JobDecodeError(f"a job spec must be a JSON object, got {type(data).__name__}")
        legacy = "v" not in data
        if not legacy and (type(data["v"]) is not int or data["v"] != SPEC_VERSION):
            raise JobDecodeError(
                f"job spec version {data['v']!r} is not {SPEC_VERSION}; the job was submitted "
                "by another framefleet version: run the same version, or submit it again"
            )
        values = _fields(data, _SCALARS, "job spec", strict=not legacy)
        values["sampling"] = _sampling(data.get("sampling"), strict=not legacy)
        try:
            return cls(**values)
        except (TypeError, ConfigError) as exc:  # TypeError: a required field is missing
            raise JobDecodeError(f"invalid job spec: {exc}") from exc

    @classmethod
    def of_record(cls, record: JobRecord) -> Self:
        """The spec of a stored job: its ``params`` decoded, where the job hash's own input,
        output and model fields stand in for params written before the spec held them.

        Raises:
            JobDecodeError: as `decode`.
        """
        where = {"input_uri": record.input_uri, "output_uri": record.output_uri}
        return cls.decode({**where, "model": record.model, **record.params})

    def image_batch(self, job_id: str, batch_no: int, items: Iterable[str]) -> ImageBatch:
        """Message ``batch_no`` of job ``job_id``: the images ``items`` (keys under the input)."""
        return ImageBatch(
            job_id,
            batch_no,
            self.input_uri,
            self.output_uri,
            self.model,
            tuple(items),
            engine=self.engine,
        )

    def video_plan(self, job_id: str, item: str) -> VideoPlan:
        """The message that plans video ``item`` of job ``job_id``: a worker probes it and splits
        it into segments of ``segment_seconds``, inferring the frames ``sampling`` picks."""
        return VideoPlan(
            job_id=job_id,
            input_uri=self.input_uri,
            output_uri=self.output_uri,
            model=self.model,
            item=item,
            segment_seconds=self.segment_seconds,
            every=self.sampling.every,
            sample_fps=self.sampling.fps,
            skip_static=self.sampling.skip_static,
            engine=self.engine,
        )

    def messages(
        self, job_id: str, keys: Iterable[str], first_no: int = 0
    ) -> Iterator[tuple[Message, int]]:
        """(message, item count) for ``keys``, read lazily: images in batches of
        ``batch_size`` numbered from ``first_no``, one `video_plan` per video, other keys
        skipped. The one way any job message is made (submit, follow, retry).

        Example:
            >>> spec = JobSpec(input_uri="s3://i/", output_uri="s3://o/", model="m", batch_size=2)
            >>> [(m.kind, n) for m, n in spec.messages("j1", ["a.jpg", "v.mp4", "b.jpg"])]
            [('video_plan', 1), ('image_batch', 2)]
        """
        batch: list[str] = []
        batch_no = first_no
        for key in keys:
            kind = classify(key)
            if kind == "image":
                batch.append(key)
                if len(batch) >= self.batch_size:
                    yield self.image_batch(job_id, batch_no, batch), len(batch)
                    batch_no += 1
                    batch = []
            elif kind == "video":
                yield self.video_plan(job_id, key), 1
        if batch:
            yield self.image_batch(job_id, batch_no, batch), len(batch)


def _fields(
    data: Mapping[str, Any], types: Mapping[str, Any], what: str, *, strict: bool
) -> dict[str, Any]:
    """The typed fields of ``data`` named in ``types``; strict: every one present, no other
    (besides ``v`` and ``sampling``)."""
    if strict:
        unknown = sorted(set(data) - set(types) - {"v", "sampling"})
        missing = sorted(set(types) - set(data))
        if unknown or missing:
            raise JobDecodeError(
                f"{what} fields differ from version {SPEC_VERSION}: missing {missing or 'none'}, "
                f"unknown {unknown or 'none'}"
            )
    values: dict[str, Any] = {}
    for name, expected in types.items():
        if name not in data:
            continue
        value = data[name]
        # bool is an int in Python; a JSON true is never a count, and 1 is never a flag.
        wrong = (
            not isinstance(value, bool)
            if expected is bool
            else not isinstance(value, expected) or isinstance(value, bool)
        )
        if wrong:
            raise JobDecodeError(
                f"{what} field {name!r} must be {_name(expected)}, "
                f"got {type(value).__name__} {value!r}"
            )
        values[name] = float(value) if expected == (int, float) else value
    return values


def _sampling(raw: Any, *, strict: bool) -> Sampling:
    if raw is None and not strict:
        return Sampling()
    if not isinstance(raw, Mapping):
        raise JobDecodeError(f"job spec field 'sampling' must be an object, got {raw!r}")
    values = _fields(raw, _SAMPLING, "job spec sampling", strict=False)
    if strict and set(raw) != set(_SAMPLING):
        raise JobDecodeError(
            f"job spec sampling must have exactly {sorted(_SAMPLING)}, got {sorted(raw)}"
        )
    try:
        return Sampling(**values)
    except ConfigError as exc:
        raise JobDecodeError(f"invalid job spec sampling: {exc}") from exc


def _name(expected: type | tuple[type, ...]) -> str:
    return "a number" if isinstance(expected, tuple) else expected.__name__
