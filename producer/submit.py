"""Submit a folder or bucket prefix: list it lazily, enqueue as it lists, record the job.

Memory stays flat in the number of objects: keys stream from the paginated listing into batches of
``batch_size`` images, and each batch is enqueued as soon as it is full. Videos go one message each.
No OpenCV here: the producer only lists, counts and sends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from itertools import islice
from typing import TypeVar

from celery import Celery

from framefleet.core import defaults
from framefleet.core.errors import (
    BrokerError,
    ConfigError,
    JobFinished,
    PipelineError,
    UnknownModelError,
)
from framefleet.core.inputs import check_output, classify, first_media, input_listing, open_input
from framefleet.core.jobrecord import JobStatus
from framefleet.core.jobspec import JobSpec
from framefleet.core.outputs import holds_nothing
from framefleet.core.sampling import Sampling
from framefleet.core.settings import Settings
from framefleet.core.storage import open_storage
from framefleet.queue import send_jobs
from framefleet.report import write_page, write_reports
from framefleet.report.summary import stop_job
from framefleet.state.beats import ProducerBeat
from framefleet.state.jobs import JobStore
from framefleet.state.presence import Presence
from producer.orphans import close_orphans
from producer.waiting import serves

log = logging.getLogger(__name__)

SEND_CHUNK = 64
"""Messages counted into the job's total with one round trip and sent through one producer:
per-message round trips were most of the producer's time. Memory stays flat (64 messages)."""

T = TypeVar("T")


def chunks(values: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` values (the last may be shorter), read lazily."""
    it = iter(values)
    while chunk := list(islice(it, size)):
        yield chunk


@dataclass(frozen=True)
class Plan:
    """What one input key becomes."""

    key: str
    kind: str  # "image" | "video" | "skip"


@dataclass(frozen=True)
class Submission:
    """The outcome of `submit`: the job id (None on a dry run) and what was counted."""

    job_id: str | None
    items: int
    skipped: int
    messages: int


def stopped(jobs: JobStore, job_id: str) -> bool:
    # True (and says why) if the job was stopped early or cancelled: listing stops.
    record = jobs.get(job_id)
    if record.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        log.warning("job %s is %s (%s); listing stopped", job_id, record.status.value, record.error)
        return True
    return False


def give_up(jobs: JobStore, job_id: str, error: str) -> None:
    """End a job whose listing failed as ``failed`` with ``error``, and write its report (exact
    counts: what was sent and has no outcome counts as cancelled). Never raises: the caller
    re-raises the listing's own error."""
    try:
        write_page(jobs, stop_job(jobs, job_id, JobStatus.FAILED, error))
    except JobFinished:  # stopped meanwhile (cancelled, failure budget): its report is written
        pass
    except PipelineError as exc:  # Redis or the output store down too
        log.error(
            "job %s: listing failed, and the job could not be closed or its report written: "
            "%s; `framefleet cancel %s` closes it, `framefleet report %s` writes its report",
            job_id,
            exc,
            job_id,
            job_id,
        )


def check_model(settings: Settings, model: str, engine: str) -> None:
    """Raise unless ``model`` is in the registry, or served by a live worker, and ``engine`` (if
    any) is known.

    A model added on the workers' side (``models add`` there) need not be in this machine's
    registry: the workers that will run it have it, and they say so in the live-worker registry.

    Raises:
        UnknownModelError: ``model`` is neither in the registry nor served by a live worker.
        ConfigError: unknown engine.
    """
    try:
        settings.registry().get(model)
    except UnknownModelError as exc:
        if not served_by_a_live_worker(settings, model):
            raise UnknownModelError(f"{exc} No live worker serves it either.") from None
        log.info("model %s is not in this machine's registry; live workers serve it", model)
    if engine and engine not in defaults.ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; choose one of {', '.join(defaults.ENGINES)}")


def served_by_a_live_worker(settings: Settings, model: str) -> bool:
    """Whether a live worker consumes ``model``'s queue (False when Redis cannot say)."""
    try:
        live = Presence(JobStore.from_url(settings.redis_url).conn).live()
    except BrokerError:
        return False
    return serves(live, model)


def submit(
    settings: Settings,
    app: Celery,
    input_uri: str,
    output_uri: str,
    model: str,
    *,
    engine: str = "",
    dry_run: bool = False,
    force: bool = False,
    on_created: Callable[[str], None] = lambda job_id: None,
    on_item: Callable[[str, str], None] = lambda key, kind: None,
    sampling: Sampling | None = None,
) -> Submission:
    """List ``input_uri``, enqueue its media for ``model``, and record the job.

    ``input_uri`` is a folder or prefix, or one image or video file.

    Videos are split into segments of ``settings.segment_seconds`` by the worker that plans
    them; ``sampling`` says which of their frames are inferred (default: all).

    Args:
        engine: the job's engine (``cv2.dnn`` or ``onnxruntime``); empty: each worker's own.
        on_created: called with the job id as soon as the job exists (before listing ends).
        on_item: called with (key, kind) for each listed key; kind "skip" for non-media keys.
        force: redo images whose outputs are already complete (by default they count as done
            without running, so submitting again resumes an earlier job).

    Raises:
        UnknownModelError: ``model`` is not in the registry.
        ConfigError: the output lies inside the input.
        NoMediaError: the input holds no image or video.
        StorageError: the input or the output cannot be listed (missing bucket, unreachable
            endpoint...).
        BrokerError: Redis is unreachable.
    """
    check_model(settings, model, engine)
    (src, single), dst = open_input(input_uri), open_storage(output_uri)
    check_output(src, dst, single is not None)
    listing = input_listing(src, dst, single)
    # Fails fast (missing bucket, no media...) before a job is recorded.
    first, skipped = first_media(src, listing, on_item)
    # The output too (a missing bucket, an unreachable endpoint): found now, not item by item.
    fresh_output = holds_nothing(dst)

    def keys() -> Iterator[str]:
        nonlocal skipped
        yield first.key
        for obj in listing:
            kind = classify(obj.key)
            on_item(obj.key, kind)
            if kind == "skip":
                skipped += 1
            else:
                yield obj.key

    spec = JobSpec.from_settings(
        settings, src.uri, dst.uri, model, engine=engine, sampling=sampling, force=force
    )
    if dry_run:
        items = sent = 0
        for _, count in spec.messages("dry-run", keys()):
            items += count
            sent += 1
        return Submission(job_id=None, items=items, skipped=skipped, messages=sent)

    jobs = JobStore.from_url(settings.redis_url, item_ttl_s=settings.job_ttl_s)
    jobs.reconnect_s = settings.redis_wait_s  # fail fast at first, then ride out a restart
    if not force and fresh_output:
        # Nothing to resume from: workers skip the per-item look for complete outputs (a HEAD
        # per image on S3, most of a worker's main-thread time beside the forward).
        spec = replace(spec, fresh_output=True)
    job_id = jobs.create(spec.input_uri, spec.output_uri, spec.model, params=spec.encode())
    with ProducerBeat(jobs, job_id):  # while it lists; a resubmission closes it if it dies
        on_created(job_id)
        try:
            close_orphans(jobs, job_id)
        except PipelineError as exc:  # only tidying: the new job goes on
            log.warning("earlier jobs of this input were not checked for orphans: %s", exc)
        items = sent = 0
        ended_early = False
        listed = spec.messages(job_id, keys())
        try:
            for chunk in chunks(listed, SEND_CHUNK):
                count = sum(n for _, n in chunk)
                # Before sending: the total never lags the outcomes. Numbered by the chunk's first
                # message, so a call repeated after a dropped connection counts the chunk once.
                jobs.add_items(job_id, count, message_no=sent)
                send_jobs(app, [message for message, _ in chunk])
                items += count
                sent += len(chunk)
                if stopped(jobs, job_id):  # one round trip per chunk
                    ended_early = True
                    break
        except PipelineError as exc:
            give_up(jobs, job_id, f"listing stopped after {items} items: {exc}")
            raise
        # Complete already (every task finished, or nothing to do), or stopped while listing:
        # the report is (re)written with the final total.
        complete = jobs.finish_listing(job_id)
    if complete or ended_early:
        write_reports(jobs, job_id)
    log.info("job %s: %d items in %d messages, %d skipped", job_id, items, sent, skipped)
    return Submission(job_id=job_id, items=items, skipped=skipped, messages=sent)
