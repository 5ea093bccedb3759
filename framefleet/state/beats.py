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
with a reason naming the new job (`producer.orphans.close_orphans`); `framefleet jobs` shows them as
``listing (producer gone)`` until then.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from types import TracebackType

from framefleet.core.errors import ProducerBusy
from framefleet.state.jobs import JobStore

log = logging.getLogger(__name__)

PRODUCER_TTL_S = 30.0
"""Seconds a producer's beat lives without renewal (renewed every third of it)."""


def producer_id() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _beat_key(jobs: JobStore, job_id: str) -> str:
    return jobs.keys.job_part(job_id, "producer")


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
            self.jobs.conn.script("beat_drop", [self.key], [self.holder])

    def _claim(self, dead: str) -> str | None:
        args = [self.holder, int(self.ttl_s * 1000), dead]
        other = self.jobs.conn.script("beat_take", [self.key], args)
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
    holder = jobs.conn.call(jobs.conn.client.get, _beat_key(jobs, job_id))
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
