"""The state of a job that follows its input (``submit --follow``), in Redis beside the job.

A following job stays ``listing`` (its listing is never finished) while a producer lists the
input every few seconds and enqueues what is new. Everything the producer needs to pick up where
it was after a SIGKILL lives here, under the job's keys (``follow``, ``follow:seen``, ``unsent``,
``arrived``, ``redo``, ``lag``, ``wake``, and the ``following`` index; `framefleet.state.keys`).

`FollowStore.admit` decides in one script, per listed object, whether it is new, rewritten or
already enqueued, and counts it into the job's total in the same step, so a producer killed at
any point and started again neither misses an object nor counts one twice: what was counted but
maybe not sent is in ``unsent`` and is sent again (a duplicate message is harmless: the done set
counts an item once). Memory in the producer stays flat: the seen-set is in Redis.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from framefleet.core import defaults
from framefleet.core.errors import BrokerError
from framefleet.core.storage import StorageObject
from framefleet.state.jobs import LAG_WINDOW, JobStore

OPENING_LOCK_S = 30
"""Seconds the find-or-open lock lives if its producer dies holding it."""

FOLLOWING = "following"
CLOSED = "closed"


@dataclass(frozen=True)
class Admitted:
    """What one `FollowStore.admit` decided.

    Attributes:
        keys: keys counted into the job and to be sent now (new, or rewritten after their outcome).
        closed: the job no longer follows (closed, cancelled, failed): nothing was admitted.
        capped: ``max_items`` was reached; the rest of the listing was not admitted.
        deferred: rewritten keys whose earlier content is still in flight (admitted on a later
            tick).
    """

    keys: list[str]
    closed: bool = False
    capped: bool = False
    deferred: int = 0


@dataclass(frozen=True)
class FollowInfo:
    """A snapshot of a following job's follow state, for `status`.

    Attributes:
        state: ``following`` or ``closed``.
        seen: object versions enqueued (new keys, plus rewrites); rewrites: of those, rewrites.
        lag_p50_s, lag_p95_s: seconds from an object's arrival (its modification time in the
            store, or a local file's ctime when later: a copy that kept an old mtime) to its
            outcome, over the last `LAG_WINDOW` outcomes; None before the first.
    """

    state: str
    interval_s: float
    seen: int
    rewrites: int
    ticks: int
    cursor: str
    until: float | None = None
    max_items: int | None = None
    reason: str = ""
    beat: float | None = None
    lags: int = 0
    lag_p50_s: float | None = None
    lag_p95_s: float | None = None

    @property
    def following(self) -> bool:
        """True while the job takes new objects."""
        return self.state == FOLLOWING

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``follow`` field of `framefleet status --json`)."""
        return {
            "state": self.state,
            "interval_s": self.interval_s,
            "until": self.until,
            "max_items": self.max_items,
            "seen": self.seen,
            "rewrites": self.rewrites,
            "ticks": self.ticks,
            "cursor": self.cursor,
            "reason": self.reason,
            "beat": self.beat,
            "lags": self.lags,
            "lag_p50_s": self.lag_p50_s,
            "lag_p95_s": self.lag_p95_s,
        }


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, interpolated; ``values`` not empty."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[min(98, max(0, int(q) - 1))]


def identity(input_uri: str, output_uri: str, model: str) -> str:
    """What makes two `submit --follow` runs the same: a restarted producer finds its job by it."""
    return f"{input_uri} -> {output_uri} [{model}]"


class FollowStore:
    """Reads and writes the follow state of jobs (see the module docstring).

    Args:
        jobs: the job store whose client, prefix and reconnect policy it shares.

    Example:
        >>> follow = FollowStore(jobs)
        >>> follow.open(job_id, identity("s3://in/", "s3://out/", "yolox-nano"), interval_s=10)
        >>> follow.admit(job_id, [StorageObject("a.jpg", 10, tag="e1")]).keys
        ['a.jpg']
    """

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs
        self.conn = jobs.conn
        self.client = jobs.conn.client
        self.keys = jobs.keys
        self._index = jobs.keys.following

    def _key(self, job_id: str, part: str = "") -> str:
        return self.keys.job_part(job_id, f"follow:{part}" if part else "follow")

    def open(
        self,
        job_id: str,
        ident: str,
        interval_s: float,
        until: float | None = None,
        max_items: int | None = None,
    ) -> None:
        """Start following for ``job_id`` (a job just created) and index it by ``ident``."""

        fields = {"identity": ident, "state": FOLLOWING, "cursor": "", "seen": 0}
        self.conn.pipeline(
            lambda pipe: (
                pipe.hset(self._key(job_id), mapping=fields)
                .hset(self._index, ident, job_id)
                # the job's outcomes note arrival-to-outcome lags from now on (job_record.lua)
                .hset(self.keys.job(job_id), "following", "1")
            )
        )
        self.configure(job_id, interval_s, until, max_items)

    def configure(
        self, job_id: str, interval_s: float, until: float | None, max_items: int | None
    ) -> None:
        """Set (or, for a producer started again, reset) the interval and the closing rules."""
        self.conn.call(
            self.client.hset,
            self._key(job_id),
            mapping={
                "interval_s": interval_s,
                "until": until or 0,
                "max_items": max_items or 0,
            },
        )

    @contextlib.contextmanager
    def opening(self, ident: str) -> Iterator[None]:
        """Hold the lock on finding or opening the job of ``ident``: of two producers started at
        the same moment, one opens the job and the other finds it (one job, not two).

        Raises:
            BrokerError: Redis is unreachable, or the lock stayed held for a minute.
        """
        lock = self.client.lock(self.keys.opening(ident), timeout=OPENING_LOCK_S)
        if not self.conn.call(lock.acquire, blocking_timeout=2 * OPENING_LOCK_S):
            raise BrokerError(f"the follow lock of {ident} stayed held for {2 * OPENING_LOCK_S} s")
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # it expires by itself
                lock.release()

    def find(self, ident: str) -> str | None:
        """The id of the job still following as ``ident``, if any (a producer started again)."""
        job_id: str | None = self.conn.call(self.client.hget, self._index, ident)
        if job_id is None:
            return None
        info = self.get(job_id)
        status = self.conn.call(self.client.hget, self.keys.job(job_id), "status")
        if info is None or not info.following or status not in ("listing", "running"):
            # it ended meanwhile (cancel, failure)
            self.conn.call(self.client.hdel, self._index, ident)
            return None
        return job_id

    def admit(
        self, job_id: str, objects: Sequence[StorageObject], max_items: int | None = None
    ) -> Admitted:
        """Count the new and rewritten ``objects`` into the job, atomically; see `Admitted`."""
        args: list[Any] = [time.time(), max_items or 0, 6]
        for obj in objects:
            video = (
                self.keys.video(job_id, obj.key),
                self.keys.video_done(job_id, obj.key),
                self.keys.job_part(job_id, "videos"),
            )
            is_video = obj.key.lower().endswith(defaults.VIDEO_SUFFIXES)
            # Arrival: when it landed under its name. A copy that keeps its mtime (cp -p, rsync
            # -a) has an mtime from the past, but its ctime says when it came (`changed`).
            args += [obj.key, obj.tag or f"{obj.size}", max(obj.modified, obj.changed)]
            args += list(video) if is_video else ["", "", ""]
        job_parts = (self.keys.job_part(job_id, part) for part in ("done", "failed"))
        parts = ("seen", "unsent", "arrived", "redo")
        keys = [self.keys.job(job_id), *job_parts, self._key(job_id)]
        out = self.conn.script(
            "follow_admit", [*keys, *(self._key(job_id, p) for p in parts)], args
        )
        return Admitted(
            keys=list(out[3:]), closed=out[0] == 1, capped=out[1] == 1, deferred=int(out[2])
        )

    def sent(self, job_id: str, keys: Sequence[str]) -> None:
        """``keys`` are on the broker: a producer started again need not send them."""
        if keys:
            self.conn.call(self.client.hdel, self._key(job_id, "unsent"), *keys)

    def unsent(self, job_id: str) -> list[str]:
        """Keys counted into the job that a killed producer may not have sent (a chunk at most)."""
        return sorted(self.conn.call(self.client.hkeys, self._key(job_id, "unsent")))

    def next_batches(self, job_id: str, count: int) -> int:
        """Reserve ``count`` message numbers; return the first."""
        last = int(self.conn.call(self.client.hincrby, self._key(job_id), "batches", count))
        return last - count

    def tick(self, job_id: str) -> int:
        """Count one listing round (its number, from 1) and note that the producer is alive."""

        now = time.time()
        key = self._key(job_id)
        return int(
            self.conn.pipeline(lambda pipe: pipe.hincrby(key, "ticks", 1).hset(key, "beat", now))[0]
        )

    def close(self, job_id: str, reason: str) -> bool:
        """Stop taking new objects (the items counted so far still run); True if this call did."""
        keys = [self._key(job_id), self._key(job_id, "wake"), self._index]
        return bool(self.conn.script("follow_close", keys, [reason, time.time(), job_id]))

    def sleep(self, job_id: str, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the next tick; True if the job was closed meanwhile."""
        if timeout_s <= 0:
            return False
        key = self._key(job_id, "wake")
        timeout = max(0.01, min(timeout_s, 20.0))  # below the client's socket timeout
        return self.conn.call(self.client.blmove, key, key, timeout, "RIGHT", "LEFT") is not None

    def cursor(self, job_id: str) -> str:
        """The greatest key listed so far ("" before the first)."""
        return str(self.conn.call(self.client.hget, self._key(job_id), "cursor") or "")

    def is_open(self, job_id: str) -> bool:
        """True while the job follows: not closed, and the job itself not stopped or ended."""

        state, status = self.conn.pipeline(
            lambda pipe: pipe.hget(self._key(job_id), "state").hget(self.keys.job(job_id), "status")
        )
        return bool(state == FOLLOWING and status in ("listing", "running"))

    def is_redo(self, job_id: str, item: str) -> bool:
        """True if ``item`` was rewritten since it was enqueued (its old outputs do not count)."""
        return bool(self.conn.call(self.client.sismember, self._key(job_id, "redo"), item))

    def get(self, job_id: str) -> FollowInfo | None:
        """The follow state of ``job_id``; None if it never followed."""

        raw, lags_raw = self.conn.pipeline(
            lambda pipe: pipe.hgetall(self._key(job_id)).lrange(
                self._key(job_id, "lag"), 0, LAG_WINDOW - 1
            )
        )
        if not raw:
            return None
        lags = sorted(float(v) for v in lags_raw)
        until, max_items = float(raw.get("until") or 0), int(raw.get("max_items") or 0)
        return FollowInfo(
            state=raw.get("state", CLOSED),
            interval_s=float(raw.get("interval_s") or 0),
            seen=int(raw.get("seen") or 0),
            rewrites=int(raw.get("rewrites") or 0),
            ticks=int(raw.get("ticks") or 0),
            cursor=raw.get("cursor", ""),
            until=until or None,
            max_items=max_items or None,
            reason=raw.get("reason", ""),
            beat=float(raw["beat"]) if raw.get("beat") else None,
            lags=len(lags),
            lag_p50_s=round(percentile(lags, 50), 3) if lags else None,
            lag_p95_s=round(percentile(lags, 95), 3) if lags else None,
        )
