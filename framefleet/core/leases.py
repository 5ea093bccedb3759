"""Leases: work in flight is tracked in Redis, and work abandoned by a dead process is found.

Celery's Redis transport gives a message back only after its visibility timeout (hours, since it
must exceed the longest task). A lease gives it back within about a minute instead::

    {prefix}:leases              zset   lease id -> deadline (epoch seconds)
    {prefix}:lease:{id}          hash   job, task, queue, body (the message JSON), holder, item
    {prefix}:job:{job}:crashes   hash   item -> starts that ended with no outcome (a dead process)

- A task takes a lease on its message (`LeaseStore.acquire`) before it starts, and drops it
  (`release`) once every item has an outcome. The lease id is the Celery task id, so Celery's own
  redelivery of a message (a pool child killed) takes over the same lease.
- A transient retry keeps the lease: `postpone` puts the retry message in it with a deadline past
  the retry's countdown, and the retry (Celery keeps the task id) takes the same lease over when it
  starts. A node that dies while it holds the delayed retry loses nothing: the lease expires and a
  sweeper sends the retry message.
- A `Heartbeat` thread in each worker process pushes the deadlines of the leases it holds forward
  every ``ttl / 3`` seconds.
- Every worker sweeps on a timer (`claim_expired`): one Lua script moves the deadline of expired
  leases forward and names the claimer, so of hundreds of sweepers exactly one gets each lease; it
  re-enqueues the message and releases the lease. A sweeper that dies between the two leaves a lease
  that expires again: at-least-once. Sweeping is one ``ZRANGEBYSCORE`` on an index, O(log n).
- Poison items: `begin_item` counts a start of an item, `end_item` uncounts it once its outcome is
  recorded. A count left over is a start that killed its process (or hung it past the time limit).
  An item started ``max_crashes`` times with no outcome is failed instead of run again.

Redoing is harmless: outputs go to keys derived from the input, and outcomes are counted once.
Keys are built inside the scripts, so this needs a single Redis (not a cluster), like Celery's
own Redis transport.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from framefleet.core import defaults, redisconn

log = logging.getLogger(__name__)

# KEYS: leases lease job   ARGV: id job task queue body holder deadline
# Takes the lease only while the job is live; returns the job's {status, params} (nil: no job).
_ACQUIRE = """
local f = redis.call('HMGET', KEYS[3], 'status', 'params')
local status = f[1]
if status ~= 'running' and status ~= 'listing' then return {status, false} end
redis.call('HSET', KEYS[2], 'job', ARGV[2], 'task', ARGV[3], 'queue', ARGV[4], 'body', ARGV[5],
           'holder', ARGV[6], 'item', '')
redis.call('ZADD', KEYS[1], ARGV[7], ARGV[1])
return {status, f[2] or '{}'}
"""

# KEYS: leases   ARGV: lease_prefix holder deadline id...
_RENEW = """
local n = 0
for i = 4, #ARGV do
  if redis.call('HGET', ARGV[1] .. ARGV[i], 'holder') == ARGV[2] then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[i])
    n = n + 1
  end
end
return n
"""

# KEYS: leases lease   ARGV: id body deadline
# Hands the lease to a delayed retry of its message: nobody holds it until the retry starts.
_POSTPONE = """
redis.call('HSET', KEYS[2], 'body', ARGV[2], 'holder', '', 'item', '')
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
"""

# KEYS: leases   ARGV: lease_prefix now new_deadline limit claimer
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[4]))
local out = {}
for _, id in ipairs(ids) do
  local h = ARGV[1] .. id
  redis.call('ZADD', KEYS[1], ARGV[3], id)
  local f = redis.call('HMGET', h, 'job', 'task', 'queue', 'body', 'item', 'holder')
  redis.call('HSET', h, 'holder', ARGV[5])
  table.insert(out, {id, f[1] or '', f[2] or '', f[3] or '', f[4] or '', f[5] or '', f[6] or ''})
end
return out
"""

# KEYS: done crashes lease   ARGV: item max_crashes
# -1: already done (skip it); else the starts of this item with no outcome, this one included.
# The lease names the item only if it is going to run (not when it is failed as poison).
_BEGIN_ITEM = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return -1 end
local n = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
if n - 1 < tonumber(ARGV[2]) then redis.call('HSET', KEYS[3], 'item', ARGV[1]) end
return n
"""

# KEYS: crashes   ARGV: item
_END_ITEM = """
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
"""


@dataclass(frozen=True)
class ExpiredLease:
    """A lease whose holder stopped renewing it: its message is to be sent again."""

    lease_id: str
    job_id: str
    task: str
    queue: str
    body: dict[str, Any]
    item: str
    """The item its holder was on when it stopped ("" if none had started)."""
    holder: str
    """``host:pid`` of the process that held it."""


class LeaseStore:
    """Leases on messages in flight, and per-item start counts, in Redis.

    Args:
        client: a redis-py client (decode_responses=True).
        prefix: namespace of every key (the job store's).
        ttl_s: seconds a lease lives without renewal.
        reconnect_s: how long calls wait for an unreachable Redis (see `redisconn.call`).

    Example:
        >>> leases = LeaseStore(redisconn.connect(url), ttl_s=30)
        >>> leases.acquire("task-1", "job-1", "framefleet.image_batch", "q", {"items": []}, "h:1")
        ('running', {'batch_size': 8})
        >>> leases.release("task-1")
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = defaults.KEY_PREFIX,
        ttl_s: float = defaults.LEASE_TTL_S,
        reconnect_s: float = 0.0,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.reconnect_s = reconnect_s
        self._index = f"{prefix}:leases"
        self._lease_prefix = f"{prefix}:lease:"
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._claim = client.register_script(_CLAIM)
        self._postpone = client.register_script(_POSTPONE)
        self._begin = client.register_script(_BEGIN_ITEM)
        self._end = client.register_script(_END_ITEM)

    def _job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def _call(self, fn: Any, **kwargs: Any) -> Any:
        return redisconn.call(lambda: fn(**kwargs), self.client, self.reconnect_s)

    def acquire(
        self, lease_id: str, job_id: str, task: str, queue: str, body: dict[str, Any], holder: str
    ) -> tuple[str | None, dict[str, Any]]:
        """Take the lease on a message of job ``job_id`` if the job is still live.

        Returns:
            The job's status ("running" or "listing" when the lease was taken; "cancelled",
            "failed", "done": not taken, skip the message; None: unknown job) and, when the
            lease was taken, the job's parameters.
        """
        status, params = self._call(
            self._acquire,
            keys=[self._index, self._lease_prefix + lease_id, self._job(job_id)],
            args=[
                lease_id,
                job_id,
                task,
                queue,
                json.dumps(body),
                holder,
                time.time() + self.ttl_s,
            ],
        )
        return (None if status is None else str(status)), json.loads(params) if params else {}

    def renew(self, lease_ids: Iterable[str], holder: str) -> int:
        """Push the deadlines of ``lease_ids`` held by ``holder`` forward; how many were."""
        ids = list(lease_ids)
        if not ids:
            return 0
        deadline = time.time() + self.ttl_s
        args = [self._lease_prefix, holder, deadline, *ids]
        return int(self._call(self._renew, keys=[self._index], args=args))

    def release(self, lease_id: str) -> None:
        """Drop the lease: its message is finished (or resent)."""

        def drop() -> Any:
            pipe = self.client.pipeline(transaction=True)
            pipe.zrem(self._index, lease_id)
            pipe.delete(self._lease_prefix + lease_id)
            return pipe.execute()

        redisconn.call(drop, self.client, self.reconnect_s)

    def postpone(self, lease_id: str, body: dict[str, Any], delay_s: float) -> None:
        """Keep the lease for a retry of its message sent with a countdown of ``delay_s``.

        The lease now carries the retry message (``body``), no holder renews it, and it expires
        ``delay_s`` + ttl from now: the retry takes it over when it starts (same task id); if
        the retry never starts (its node died), a sweeper sends ``body`` then.
        """
        keys = [self._index, self._lease_prefix + lease_id]
        deadline = time.time() + delay_s + self.ttl_s
        self._call(self._postpone, keys=keys, args=[lease_id, json.dumps(body), deadline])

    def claim_expired(self, claimer: str, limit: int = 100) -> list[ExpiredLease]:
        """Claim up to ``limit`` expired leases for ``claimer``; safe on many sweepers at once.

        A claimed lease gets a fresh deadline, so no other sweeper claims it while this one
        resends its message; the caller then calls `release`.
        """
        now = time.time()
        rows = self._call(
            self._claim,
            keys=[self._index],
            args=[self._lease_prefix, now, now + self.ttl_s, limit, claimer],
        )
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

    def begin_item(self, job_id: str, item: str, lease_id: str, max_crashes: int) -> int:
        """Count a start of ``item``: -1 if it is already done (skip it), else the number of
        starts with no outcome so far, this one included (1 on a first run). More than
        ``max_crashes`` earlier starts: the caller fails it instead of running it."""
        job = self._job(job_id)
        keys = [f"{job}:done", f"{job}:crashes", self._lease_prefix + lease_id]
        return int(self._call(self._begin, keys=keys, args=[item, max_crashes]))

    def suspects(self, job_id: str, items: Iterable[str]) -> set[str]:
        """Those of ``items`` with a start that ended in no outcome (their process died)."""
        names = list(items)
        if not names:
            return set()
        key = f"{self._job(job_id)}:crashes"
        counts = self._call(self.client.hmget, name=key, keys=names)
        return {item for item, n in zip(names, counts, strict=True) if n and int(n) > 0}

    def end_item(self, job_id: str, item: str) -> None:
        """Uncount the start of ``item``: its outcome is recorded (or its retry is sent)."""
        self._call(self._end, keys=[f"{self._job(job_id)}:crashes"], args=[item])

    def held(self) -> list[tuple[str, str, str]]:
        """(lease id, holder, current item) of every lease (for `framefleet` tools and tests)."""

        def read() -> Any:
            ids = [str(i) for i in self.client.zrange(self._index, 0, -1)]
            pipe = self.client.pipeline()
            for lease_id in ids:
                pipe.hmget(self._lease_prefix + lease_id, "holder", "item")
            return list(zip(ids, pipe.execute(), strict=True))

        rows: list[tuple[str, list[str | None]]] = redisconn.call(
            read, self.client, self.reconnect_s
        )
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
