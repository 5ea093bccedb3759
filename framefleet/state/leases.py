"""Leases: work in flight is tracked in Redis, and work abandoned by a dead process is found.

Celery's Redis transport gives a message back only after its visibility timeout (hours, since it
must exceed the longest task). A lease gives it back within about a minute instead (keys: the
``leases`` index, one ``lease:{id}`` hash each, the job's ``crashes``; `framefleet.state.keys`).

- A task takes a lease on its message (`LeaseStore.begin`) before it starts; recording the
  message's outcomes releases it in the same call (`JobStore.record_many`), or `release` does.
  The lease id is the Celery task id, so Celery's own redelivery of a message (a pool child
  killed) takes over the same lease.
- A transient retry keeps the lease: `postpone` puts the retry message in it with a deadline past
  the retry's countdown, and the retry (Celery keeps the task id) takes the same lease over when it
  starts. A node that dies while it holds the delayed retry loses nothing: the lease expires and a
  sweeper sends the retry message.
- A `Heartbeat` thread in each worker process pushes the deadlines of the leases it holds forward
  every ``ttl / 3`` seconds.
- Every worker sweeps on a timer (`claim_expired`): one script moves the deadline of expired
  leases forward and names the claimer, so of hundreds of sweepers exactly one gets each lease; it
  re-enqueues the message and releases the lease. A sweeper that dies between the two leaves a lease
  that expires again: at-least-once.
- Poison items, counted off the hot path: a unit that runs alone (the only unit of its message,
  or a suspect run by itself: `mark`) counts its start when it begins, and its outcome or resend
  uncounts it, so a start left counted died with its process (as copies racing each other see).
  The units of a message that ran together cost nothing until its holder dies: whoever finds the
  lease (a sweeper, or the redelivered message taking it over) marks those without an outcome as
  suspects, once. `begin` returns the counts: suspects run again one at a time, so a poison
  unit's deaths are its own, and a unit with ``max_crashes`` starts that died is failed instead of
  run again. An outcome clears the count.

Redoing is harmless: outputs go to keys derived from the input, and outcomes are counted once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from framefleet.core import defaults
from framefleet.state.connection import Connection
from framefleet.state.keys import Keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExpiredLease:
    """A lease whose holder stopped renewing it: its message is to be sent again."""

    lease_id: str
    job_id: str
    task: str
    queue: str
    body: dict[str, Any]
    item: str
    """The unit its holder was running alone when it stopped ("" if none)."""
    holder: str
    """``host:pid`` of the process that held it."""


@dataclass(frozen=True)
class Begun:
    """What taking a message's lease found.

    Attributes:
        status: the job's status: ``running`` or ``listing`` when the lease was taken;
            ``cancelled``, ``failed``, ``done``: not taken, skip the message; None: no such job.
        params: the job's spec (`JobRecord.params`), when taken.
        done: units that already succeeded (a redelivered message skips them).
        crashes: units that run alone or are suspects -> their earlier starts alone that died
            (0: a suspect that ran with others, or a unit on its first start alone).
        redo: units a following job saw rewritten since enqueued (their old outputs don't count).
    """

    status: str | None
    params: dict[str, Any] = field(default_factory=dict)
    done: frozenset[str] = frozenset()
    crashes: dict[str, int] = field(default_factory=dict)
    redo: frozenset[str] = frozenset()

    @property
    def taken(self) -> bool:
        """True if the job is live and the lease is this message's."""
        return self.status in ("running", "listing")


class LeaseStore:
    """Leases on messages in flight, and per-unit crash counts, in Redis.

    Args:
        conn: the connection.
        keys: the key layout.
        ttl_s: seconds a lease lives without renewal.

    Example:
        >>> leases = LeaseStore(Connection.from_url(url), ttl_s=30)
        >>> leases.begin("task-1", "job-1", "framefleet.image_batch", "q", body, "h:1", ["a.jpg"])
        Begun(status='running', params={...}, done=frozenset(), crashes={}, redo=frozenset())
        >>> leases.release("task-1")
    """

    def __init__(
        self,
        conn: Connection,
        keys: Keys | None = None,
        ttl_s: float = defaults.LEASE_TTL_S,
    ) -> None:
        self.conn = conn
        self.keys = keys or Keys()
        self.ttl_s = ttl_s

    def begin(
        self,
        lease_id: str,
        job_id: str,
        task: str,
        queue: str,
        body: dict[str, Any],
        holder: str,
        units: Sequence[str],
        max_crashes: int = defaults.MAX_CRASHES,
    ) -> Begun:
        """Take the lease on a message of job ``job_id`` if the job is still live, and read what
        its ``units`` need to know to run (one call). A unit with ``max_crashes`` starts that died
        is not named in the lease as running: it is to be failed, not run."""
        keys = [self.keys.job(job_id), self.keys.leases, self.keys.lease(lease_id)]
        args: list[Any] = [lease_id, job_id, task, queue, json.dumps(body), holder]
        args += [time.time() + self.ttl_s, json.dumps(list(units)), max_crashes, *units]
        reply = self.conn.script("lease_begin", keys, args)
        if len(reply) == 1:
            return Begun(None if reply[0] is None else str(reply[0]))
        status, params, done, crashes, redo = reply
        return Begun(
            status=str(status),
            params=json.loads(params),
            done=frozenset(u for u, flag in zip(units, done, strict=True) if flag),
            crashes={u: int(n) for u, n in zip(units, crashes, strict=False) if int(n) >= 0},
            redo=frozenset(u for u, flag in zip(units, redo, strict=False) if flag),
        )

    def mark(self, job_id: str, lease_id: str, unit: str) -> None:
        """``unit`` now runs alone under the lease ("": the rest run together): its start is
        counted, and a death now is charged to it only."""
        keys = [self.keys.job(job_id), self.keys.lease(lease_id)]
        self.conn.script("lease_alone", keys, [unit])

    def uncount(self, job_id: str, unit: str) -> None:
        """Uncount a start of ``unit`` that ran alone: it is resent, or was skipped."""
        self.conn.script("lease_uncount", [self.keys.job_part(job_id, "crashes")], [unit])

    def renew(self, lease_ids: Iterable[str], holder: str) -> int:
        """Push the deadlines of ``lease_ids`` held by ``holder`` forward; how many were."""
        ids = list(lease_ids)
        if not ids:
            return 0
        args = [self.keys.lease_prefix, holder, time.time() + self.ttl_s, *ids]
        return int(self.conn.script("lease_renew", [self.keys.leases], args))

    def release(self, lease_id: str) -> None:
        """Drop the lease: its message is finished (or resent)."""
        self.conn.pipeline(
            lambda pipe: pipe.zrem(self.keys.leases, lease_id).delete(self.keys.lease(lease_id))
        )

    def postpone(
        self, lease_id: str, body: dict[str, Any], delay_s: float, units: Sequence[str]
    ) -> None:
        """Keep the lease for a retry of its message sent with a countdown of ``delay_s``.

        The lease now carries the retry message (``body``, its ``units``), no holder renews it,
        and it expires ``delay_s`` + ttl from now: the retry takes it over when it starts (same
        task id); if the retry never starts (its node died), a sweeper sends ``body`` then.
        """
        keys = [self.keys.leases, self.keys.lease(lease_id)]
        deadline = time.time() + delay_s + self.ttl_s
        args = [lease_id, json.dumps(body), deadline, json.dumps(list(units))]
        self.conn.script("lease_postpone", keys, args)

    def claim_expired(self, claimer: str, limit: int = 100) -> list[ExpiredLease]:
        """Claim up to ``limit`` expired leases for ``claimer``; safe on many sweepers at once.

        A claimed lease gets a fresh deadline, so no other sweeper claims it while this one
        resends its message; the caller then calls `release`.
        """
        now = time.time()
        args = [self.keys.lease_prefix, now, now + self.ttl_s, limit, claimer]
        rows = self.conn.script("lease_claim", [self.keys.leases], args)
        claimed = []
        for lease_id, job_id, task, queue, body, item, holder in rows:
            try:
                message = json.loads(body)
            except ValueError:
                log.error("lease %s holds no valid message; dropped", lease_id)
                self.release(lease_id)
                continue
            claimed.append(ExpiredLease(lease_id, job_id, task, queue, message, item, holder))
        return claimed

    def held(self) -> list[tuple[str, str, str]]:
        """(lease id, holder, unit running alone) of every lease (for tools and tests)."""

        def read() -> list[tuple[str, list[str | None]]]:
            ids = [str(i) for i in self.conn.client.zrange(self.keys.leases, 0, -1)]
            pipe = self.conn.client.pipeline()
            for lease_id in ids:
                pipe.hmget(self.keys.lease(lease_id), "holder", "item")
            return list(zip(ids, pipe.execute(), strict=True))

        rows = self.conn.call(read)
        return [(i, h or "", it or "") for i, (h, it) in rows]


class Heartbeat:
    """A daemon thread that renews the leases this process holds every ``ttl / 3`` seconds.

    A renewal that fails (Redis restarting) is logged once per outage and tried again next beat;
    the lease may then expire and its message be redone elsewhere, which is harmless.

    Example:
        >>> beat = Heartbeat(leases, holder="host:123")
        >>> beat.hold("task-1"); ...; beat.drop("task-1")
    """

    def __init__(self, leases: LeaseStore, holder: str) -> None:
        self.leases = leases
        self.holder = holder
        self._ids: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, lease_id: str) -> None:
        """Renew ``lease_id`` from now on (starts the thread on first use)."""
        with self._lock:
            self._ids.add(lease_id)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="framefleet-heartbeat", daemon=True
                )
                self._thread.start()

    def drop(self, lease_id: str) -> None:
        """Stop renewing ``lease_id``."""
        with self._lock:
            self._ids.discard(lease_id)

    def stop(self) -> None:
        """End the thread (tests; a worker process just exits)."""
        self._stop.set()

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(self.leases.ttl_s / 3):
            with self._lock:
                ids = list(self._ids)
            try:
                # No waiting here: the next beat retries, and the task itself waits for Redis.
                self.leases.renew(ids, self.holder)
                failing = False
            except Exception as exc:  # a heartbeat must never die
                if not failing:
                    log.warning("lease renewal failed (%s); retrying every beat", exc)
                failing = True
