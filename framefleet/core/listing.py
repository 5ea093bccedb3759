"""Who is listing a job: a producer's beat while it lists, and orphans left by dead producers.

A job stays ``listing`` until its producer has sent every message. A producer killed mid-listing
leaves it there forever (its items can never all have outcomes, since it never learns its total).
While it lists, a producer keeps a beat in Redis::

    {prefix}:job:{id}:producer   string   "host:pid" of the listing producer, expiring after ttl

renewed by a thread every ``ttl / 3`` seconds. The beat is also the job's producer lease: it is
taken only when free, already this process's, or left by a dead process of this host
(`ProducerBeat.take`), and renewed only while it is still this process's, so two producers of one
following job never list it at once (the second stands by; a lapsed one learns it lost the beat).
A job in ``listing`` whose beat has expired, or whose beat names a process of this host that no
longer runs, has lost its producer: it is an orphan. Submitting the same input to the same
output with the same model again (what a user does after a killed submit) cancels such orphans
with a reason naming the new job (`close_orphans`); `framefleet jobs` shows them as
``listing (producer gone)`` until then.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from types import TracebackType

from framefleet.core.errors import JobFinished, ProducerBusy
from framefleet.core.jobrecord import JobStatus
from framefleet.core.jobstate import JobStore
from framefleet.core.summary import stop_job

log = logging.getLogger(__name__)

PRODUCER_TTL_S = 30.0
"""Seconds a producer's beat lives without renewal (renewed every third of it)."""

ORPHAN_SCAN = 200
"""Recent jobs a submission looks through for orphans of its input, output and model."""


def producer_id() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _beat_key(jobs: JobStore, job_id: str) -> str:
    return f"{jobs.keys(job_id)[0]}:producer"


# KEYS: beat. ARGV: me, ttl_ms, a dead holder that may be replaced ("" for none).
# Sets the beat if it is free, mine or the dead holder's; else returns who holds it.
_TAKE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] and holder ~= ARGV[3] then return holder end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

# KEYS: beat. ARGV: me. Deletes the beat only if it is still mine.
_DROP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


class ProducerBeat:
    """Marks job ``job_id`` as being listed by this process, for as long as the block runs.

    Example:
        >>> with ProducerBeat(jobs, job_id):
        ...     list_and_send()
    """

    def __init__(self, jobs: JobStore, job_id: str, ttl_s: float = PRODUCER_TTL_S) -> None:
        self.jobs = jobs
        self.job_id = job_id
        self.key = _beat_key(jobs, job_id)
        self.ttl_s = ttl_s
        self.holder = producer_id()
        self.lost = threading.Event()
        """Set once another producer took the beat (this one's lapsed: a long pause, a split)."""
        self._take = jobs.client.register_script(_TAKE)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="framefleet-producer", daemon=True)

    def take(self) -> str | None:
        """Hold the beat if it is free, this process's, or a dead process's of this host; else
        return the live producer (``host:pid``) that holds it."""
        other = self._claim("")
        if other is not None and holder_dead(other):
            other = self._claim(other)  # a producer killed on this host: take over at once
        return other

    def __enter__(self) -> ProducerBeat:
        other = self.take()
        if other is not None:
            raise ProducerBusy(
                f"job {self.job_id} is being listed by producer {other}; stop it first, or run "
                "this again once its beat lapses"
            )
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        with contextlib.suppress(Exception):  # it expires by itself
            self.jobs.client.eval(_DROP, 1, self.key, self.holder)

    def _claim(self, dead: str) -> str | None:
        other = self.jobs._call(
            self._take, keys=[self.key], args=[self.holder, int(self.ttl_s * 1000), dead]
        )
        return None if other is None else str(other)

    def _run(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                other = self._claim("")
            except Exception as exc:  # Redis restarting: the listing itself waits and says so
                log.debug("producer beat failed: %s", exc)
                continue
            if other is not None:
                log.warning(
                    "job %s: producer %s took over the listing while this one's beat had lapsed; "
                    "this one stops listing",
                    self.job_id,
                    other,
                )
                self.lost.set()
                return


def producer_gone(jobs: JobStore, job_id: str) -> bool:
    """True if nobody lists job ``job_id`` any more (its beat expired, or names a dead process
    of this host). Meaningful only for a job in ``listing``."""
    holder = jobs._call(jobs.client.get, _beat_key(jobs, job_id))
    return holder is None or holder_dead(str(holder))


def holder_dead(holder: str) -> bool:
    """True if ``holder`` (``host:pid``) names a process of this host that no longer runs."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's producer: trust its beat until it expires
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def close_orphans(jobs: JobStore, job_id: str) -> list[str]:
    """Cancel the orphans of job ``job_id``: jobs still ``listing`` with the same input, output
    and model whose producer is gone. Returns their ids.

    Their counts freeze and their summary is written (`stop_job`); workers skip their remaining
    messages; the outputs they completed count as done in the new job (resume).
    """
    record = jobs.get(job_id)
    ids = [str(i) for i in jobs._call(jobs.client.zrevrange, f"{jobs.prefix}:jobs", 0, ORPHAN_SCAN)]

    def read() -> list[list[str | None]]:
        pipe = jobs.client.pipeline(transaction=False)
        for other in ids:
            pipe.hmget(jobs.keys(other)[0], "status", "input", "output", "model")
        return pipe.execute()

    closed = []
    for other, (status, input_uri, output_uri, model) in zip(ids, jobs._call(read), strict=True):
        same = (input_uri, output_uri, model) == (record.input_uri, record.output_uri, record.model)
        if other == job_id or status != JobStatus.LISTING.value or not same:
            continue
        if not producer_gone(jobs, other):
            continue
        reason = (
            f"abandoned: its producer stopped while listing (killed, or its machine died); "
            f"superseded by job {job_id}, which resubmitted the same input, output and model"
        )
        try:
            stop_job(jobs, other, JobStatus.CANCELLED, reason)
        except JobFinished:
            continue
        except Exception as exc:  # closed, but its summary could not be written
            log.warning("job %s closed, but its summary was not written: %s", other, exc)
        log.warning("closed job %s: %s", other, reason)
        closed.append(other)
    return closed
