"""Follow a folder or prefix (``submit --follow``): list it every few seconds, enqueue what is new.

One tick lists the input and hands the media it finds to `FollowStore.admit`, which counts the
new and rewritten objects into the job and says which to send. What the producer knows between
ticks is in Redis with the job (the seen-set, the cursor, the keys counted but not yet sent), so
its memory stays flat and a producer killed and started again with the same arguments finds the
job by its (input, output, model) and goes on, missing and doubling nothing.

Listing: S3 lists keys in order, so a tick asks only for the keys after the last one listed
(ListObjectsV2 ``StartAfter``), and every `FULL_RELIST_EVERY`-th tick lists the whole prefix to
catch rewritten keys and keys that landed before the cursor. A local folder is walked whole each
tick (no requests), but only the files whose ctime is recent (`CHANGE_SLACK_S` before the last
walk) go to the admission script, so an unchanged folder costs Redis nothing; every
`FULL_RELIST_EVERY`-th tick, a producer's first, and each while a rewrite waits for its earlier
run, checks every file.

Producers: one lists a job at a time, holding its beat (`framefleet.state.beats.ProducerBeat`).
A second producer started on the same input, output and model finds the same job (the find or
open is locked) and stands by; it takes over when the first stops, at once if that one died on
this machine, else once its beat lapses. So a second copy of the command is a hot standby, never
a second job or a second listing.

Results: every ``compact_every_s`` the producer compacts the job's results tables, so they stay a
few files however long the job follows; the job's end compacts them once more.

Closing: ``--until``, ``--max-items`` or a `framefleet cancel` close the job for new objects;
the items already counted still run, and the job ends ``done`` with exact counts once they
have their outcomes (a second cancel stops it at once, as for any job).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from celery import Celery

from framefleet.core.errors import ConfigError
from framefleet.core.inputs import check_output, classify, input_keys, open_input
from framefleet.core.jobrecord import JobRecord
from framefleet.core.jobspec import JobSpec
from framefleet.core.sampling import Sampling
from framefleet.core.settings import Settings
from framefleet.core.storage import Storage, StorageObject, open_storage
from framefleet.core.storage.base import uri_scheme
from framefleet.dataset import compact
from framefleet.queue import send_jobs
from framefleet.report import write_reports
from framefleet.state.beats import PRODUCER_TTL_S, ProducerBeat
from framefleet.state.follow import FollowStore, identity
from framefleet.state.jobs import JobStore
from producer.submit import check_model, chunks

log = logging.getLogger(__name__)

FULL_RELIST_EVERY = 6
"""On S3, every N-th tick lists the whole prefix (rewrites, keys landing before the cursor);
the others list only the keys after the cursor."""

CLOSED_ELSEWHERE = "closed by framefleet cancel, or the job stopped"
TAKEN_OVER = "another producer took over"

STANDBY_POLL_S = 1.0
"""How often a standing-by producer looks whether the job's beat is free."""

CHANGE_SLACK_S = 10.0
"""A tick checks the objects changed since this long before the last listing began: a file
created during a walk, in a folder the walk had passed, is caught by the next one, and a file
server's clock may run this far behind ours (further, the full listing still catches it)."""

ADMIT_CHUNK = 256
"""Listed objects decided with one round trip (the producer holds at most this many)."""


@dataclass(frozen=True)
class FollowOptions:
    """How a job follows its input.

    Attributes:
        interval_s: seconds from the start of one listing to the start of the next.
        until: close the job at this time (seconds since the epoch); None: no limit.
        max_items: close the job once this many object versions were enqueued; None: no limit.
        compact_every_s: seconds between compactions of the results tables while following
            (the parts of every message since the last one become a few files).
    """

    interval_s: float = 10.0
    until: float | None = None
    max_items: int | None = None
    compact_every_s: float = 600.0

    def __post_init__(self) -> None:
        if self.interval_s <= 0:
            raise ConfigError(f"--interval must be positive, got {self.interval_s} s")
        if self.compact_every_s <= 0:
            raise ConfigError(f"--compact-every must be positive, got {self.compact_every_s} s")


@dataclass(frozen=True)
class Tick:
    """What one listing round did (for the producer's progress line)."""

    number: int
    listed: int
    checked: int
    """Listed objects put to the admission script: all on a full listing, else those changed
    since the last listing (or of unknown change time)."""
    enqueued: int
    deferred: int
    full: bool


@dataclass(frozen=True)
class Followed:
    """How following ended: the job, whether this producer resumed it, and why it closed."""

    job_id: str
    resumed: bool
    reason: str


class Follower:
    """Sends the follow admissions of one job as messages (the producer, and a cancel that has
    to send what a killed producer counted but did not send)."""

    def __init__(self, app: Celery, jobs: JobStore, job_id: str, spec: JobSpec) -> None:
        self.app = app
        self.jobs = jobs
        self.follow = FollowStore(jobs)
        self.job_id = job_id
        self.spec = spec

    @classmethod
    def of_job(cls, app: Celery, jobs: JobStore, record: JobRecord) -> Follower:
        """The follower of an existing job, from its record.

        Raises:
            JobDecodeError: the job's stored spec is not one this version reads.
        """
        return cls(app, jobs, record.job_id, JobSpec.of_record(record))

    def send(self, keys: Sequence[str]) -> None:
        """Send ``keys`` (already counted into the job) and note them sent."""
        if not keys:
            return
        first = self.follow.next_batches(self.job_id, len(keys))
        batch = self.spec.messages(self.job_id, keys, first_no=first)
        send_jobs(self.app, [message for message, _ in batch])
        self.follow.sent(self.job_id, keys)

    def send_unsent(self) -> int:
        """Send what a killed producer counted but may not have sent; how many keys."""
        keys = self.follow.unsent(self.job_id)
        self.send(keys)
        return len(keys)

    def close(self, reason: str) -> JobRecord:
        """Close the job for new objects; it ends once the items counted have outcomes.

        The report is written here if nothing was left to run; otherwise the worker that records
        the last outcome writes it, as for any job.
        """
        self.follow.close(self.job_id, reason)
        self.send_unsent()
        if self.jobs.finish_listing(self.job_id):
            write_reports(self.jobs, self.job_id)
        return self.jobs.get(self.job_id)


def media(objects: Iterator[StorageObject]) -> Iterator[StorageObject]:
    """The images and videos among ``objects``."""
    return (obj for obj in objects if classify(obj.key) != "skip")


def _standing_by(job_id: str, other: str) -> None:
    log.warning(
        "job %s is listed by producer %s; this one stands by and takes over if that one stops "
        "(at once if it ran on this machine, else once its beat lapses after %.0f s)",
        job_id,
        other,
        PRODUCER_TTL_S,
    )


def follow(
    settings: Settings,
    app: Celery,
    input_uri: str,
    output_uri: str,
    model: str,
    options: FollowOptions,
    *,
    engine: str = "",
    force: bool = False,
    sampling: Sampling | None = None,
    on_created: Callable[[str, bool], None] = lambda job_id, resumed: None,
    on_tick: Callable[[Tick], None] = lambda tick: None,
    on_standby: Callable[[str, str], None] = _standing_by,
) -> Followed:
    """Follow ``input_uri`` until ``options`` or a `framefleet cancel` close the job.

    The open following job of the same input, output and model is resumed if there is one
    (a producer killed and started again), else a job is created. While another live producer
    lists that job, this one stands by and takes over when that one stops.

    Args:
        on_created: called with (job id, resumed) before the first listing.
        on_tick: called after each listing round.
        on_standby: called with (job id, the listing producer's ``host:pid``) when this one
            starts standing by.

    Returns:
        The job and why it closed. The items counted still run; wait for the job to finish.

    Raises:
        UnknownModelError, ConfigError: as `producer.submit.submit` (and a single file input).
        StorageError: the input cannot be listed.
        BrokerError: Redis is unreachable.
    """
    check_model(settings, model, engine)
    (src, single), dst = open_input(input_uri), open_storage(output_uri)
    if single is not None:
        raise ConfigError(f"--follow needs a folder or prefix to list, not one file: {input_uri}")
    check_output(src, dst, single=False)
    jobs = JobStore.from_url(settings.redis_url, item_ttl_s=settings.job_ttl_s)
    jobs.reconnect_s = settings.redis_wait_s
    store = FollowStore(jobs)
    ident = identity(src.uri, dst.uri, model)
    with store.opening(ident):
        job_id = store.find(ident)
        resumed = job_id is not None
        if job_id is None:
            spec = JobSpec.from_settings(
                settings,
                src.uri,
                dst.uri,
                model,
                engine=engine,
                sampling=sampling,
                force=force,
                follow=True,
            )
            job_id = jobs.create(spec.input_uri, spec.output_uri, spec.model, params=spec.encode())
            store.open(job_id, ident, options.interval_s, options.until, options.max_items)
    follower = Follower.of_job(app, jobs, jobs.get(job_id))
    on_created(job_id, resumed)
    while True:
        # One producer lists a job at a time: the beat is its lease. Another one stands by and
        # takes over when the beat lapses; a producer whose beat lapsed goes back to standing by.
        beat = ProducerBeat(jobs, job_id)
        if not _wait_turn(store, beat, on_standby):
            return Followed(job_id, resumed, CLOSED_ELSEWHERE)
        with beat:  # `jobs` shows it listing, not "producer gone"
            if resumed:
                store.configure(job_id, options.interval_s, options.until, options.max_items)
                if count := follower.send_unsent():
                    log.info("job %s: sent %d items again that the last producer may not have",
                             job_id, count)  # fmt: skip
            reason = _follow(store, follower, src, dst, options, on_tick, beat.lost)
        if reason != TAKEN_OVER:
            break
        resumed = True
    if reason == CLOSED_ELSEWHERE:
        return Followed(job_id, resumed, reason)
    follower.close(reason)
    log.info("job %s closed: %s", job_id, reason)
    return Followed(job_id, resumed, reason)


def _compact(job_id: str, dst: Storage) -> None:
    """Compact the results tables of a following job; a failure waits for the next time."""
    try:
        compact(dst)
    except Exception as exc:  # the parts stay queryable as they are
        log.warning("job %s: results tables under %s not compacted now: %s", job_id, dst.uri, exc)


def _wait_turn(
    store: FollowStore, beat: ProducerBeat, on_standby: Callable[[str, str], None]
) -> bool:
    """Wait until this producer holds the job's beat (True), or the job closed (False)."""
    told = False
    while (other := beat.take()) is not None:
        if not told:
            on_standby(beat.job_id, other)
            told = True
        store.sleep(beat.job_id, STANDBY_POLL_S)  # returns early when the job is closed
        if not store.is_open(beat.job_id):
            return False
    return True


def _follow(
    store: FollowStore,
    follower: Follower,
    src: Storage,
    dst: Storage,
    options: FollowOptions,
    on_tick: Callable[[Tick], None],
    lost: threading.Event,
) -> str:
    """List ``src`` tick after tick until the job is to close, or another producer took it over
    (``lost``); why it stopped."""
    job_id = follower.job_id
    by_cursor = uri_scheme(src.uri) == "s3"  # lists in key order, one request per 1000 keys
    reason = ""
    since: float | None = None  # objects changed before this were admitted by an earlier tick
    compacted_at = time.monotonic()
    while True:
        if lost.is_set():
            return TAKEN_OVER
        started, listing_at = time.monotonic(), time.time()
        number = store.tick(job_id)
        if not store.is_open(job_id):
            return CLOSED_ELSEWHERE
        recent = None if number % FULL_RELIST_EVERY == 1 else since  # None: check every object
        full = recent is None
        after = "" if full or not by_cursor else store.cursor(job_id)
        listed = checked = enqueued = deferred = 0
        for chunk in chunks(media(input_keys(src, dst, after)), ADMIT_CHUNK):
            listed += len(chunk)
            if recent is not None:  # an object unchanged since the last listing cannot be new
                chunk = [obj for obj in chunk if not obj.changed or obj.changed >= recent]
            checked += len(chunk)
            if not chunk:
                continue
            admitted = store.admit(job_id, chunk, options.max_items)
            follower.send(admitted.keys)
            enqueued += len(admitted.keys)
            deferred += admitted.deferred
            if admitted.closed:
                return CLOSED_ELSEWHERE
            if admitted.capped:
                reason = f"--max-items {options.max_items} reached"
                break
        on_tick(Tick(number, listed, checked, enqueued, deferred, full))
        if time.monotonic() - compacted_at >= options.compact_every_s:
            _compact(job_id, dst)
            compacted_at = time.monotonic()
        # A deferred rewrite is admitted once its earlier run has an outcome, whatever its ctime:
        # while any wait, every local tick checks every file (S3 keeps its cursor: such a key
        # waits for the next full listing, as it did before).
        since = None if deferred and not by_cursor else listing_at - CHANGE_SLACK_S
        if not reason and options.until is not None and time.time() >= options.until:
            reason = "--until reached"  # after a last listing: what landed until then runs
        if reason:
            break
        wait = options.interval_s - (time.monotonic() - started)
        if options.until is not None:
            wait = min(wait, options.until - time.time())
        store.sleep(job_id, wait)  # returns early when the job is closed
    return reason
