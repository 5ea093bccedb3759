"""Who is listing a job: a producer's beat while it lists, and orphans left by dead producers.

A job stays ``listing`` until its producer has sent every message. A producer killed mid-listing
leaves it there forever (its items can never all have outcomes, since it never learns its total).
While it lists, a producer keeps a beat in Redis::

    {prefix}:job:{id}:producer   string   "host:pid" of the listing producer, expiring after ttl

renewed by a thread every ``ttl / 3`` seconds. A job in ``listing`` whose beat has expired, or
whose beat names a process of this host that no longer runs, has lost its producer: it is an
orphan. Submitting the same input to the same output with the same model again (what a user does
after a killed submit) cancels such orphans with a reason naming the new job (`close_orphans`);
`framefleet jobs` shows them as ``listing (producer gone)`` until then.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from types import TracebackType

from framefleet.core.errors import JobFinished
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


class ProducerBeat:
    """Marks job ``job_id`` as being listed by this process, for as long as the block runs.

    Example:
        >>> with ProducerBeat(jobs, job_id):
        ...     list_and_send()
    """

    def __init__(self, jobs: JobStore, job_id: str, ttl_s: float = PRODUCER_TTL_S) -> None:
        self.jobs = jobs
        self.key = _beat_key(jobs, job_id)
        self.ttl_s = ttl_s
        self.holder = producer_id()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="framefleet-producer", daemon=True)

    def __enter__(self) -> ProducerBeat:
        self._beat()
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
            self.jobs.client.delete(self.key)

    def _beat(self) -> None:
        self.jobs.client.set(self.key, self.holder, px=int(self.ttl_s * 1000))

    def _run(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self._beat()
            except Exception as exc:  # Redis restarting: the listing itself waits and says so
                log.debug("producer beat failed: %s", exc)


def producer_gone(jobs: JobStore, job_id: str) -> bool:
    """True if nobody lists job ``job_id`` any more (its beat expired, or names a dead process
    of this host). Meaningful only for a job in ``listing``."""
    holder = jobs._call(jobs.client.get, _beat_key(jobs, job_id))
    if holder is None:
        return True
    host, _, pid = str(holder).rpartition(":")
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
