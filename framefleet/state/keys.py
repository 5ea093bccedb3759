"""Every Redis key framefleet uses, built in one place; the whole layout is stated here once.

``P`` is the prefix (`framefleet.core.defaults.KEY_PREFIX`, ``framefleet``). A job's keys share
the stem ``P:job:{id}``, so a script given the job key builds the others (a single Redis, not a
cluster). *Per-item* keys are what retention expires when a job ends (`PER_ITEM`, from
`JOB_KEYS`), then keeps again when it is reopened; the job hash, ``classes`` and ``finished``
stay so that ``jobs`` and ``status`` still show the job.

================================  ======  ========================================================
key                               type    what, who writes it
================================  ======  ========================================================
P:jobs                            zset    job ids by creation time (producer)
P:job:{id}                        hash    the job: spec (``params``), status, total, listed,
                                          timestamps, frames, classes (JSON), flags ``crashed``,
                                          ``following``, ``failed_any`` (producer, job_record.lua)
P:job:{id}:done                   set     items that succeeded, each once (job_record.lua)
P:job:{id}:failed                 hash    item -> JSON reason, items that finally failed
P:job:{id}:counted                set     message numbers counted into the total (producer)
P:job:{id}:retrying               set     items `framefleet retry` sent again (job_reopen.lua)
P:job:{id}:crashes                hash    item -> starts that ended with no outcome (a process
                                          died holding its lease: lease_begin, lease_claim)
P:job:{id}:finished               list    one token once the job ended; waiters block on it
P:job:{id}:producer               string  ``host:pid`` of the listing producer, with a TTL
P:job:{id}:videos                 zset    video items by plan time (plan task)
P:job:{id}:video:{item}           hash    a video's segments, frames, state, merge message
P:job:{id}:video:{item}:done      set     its segments recorded done (video_record.lua)
P:job:{id}:follow                 hash    a following job's identity, interval, cursor, ticks
P:job:{id}:follow:seen            hash    key -> content tag enqueued (follow_admit.lua)
P:job:{id}:follow:unsent          hash    keys counted, not yet known sent
P:job:{id}:follow:arrived         hash    key -> arrival time, until its outcome
P:job:{id}:follow:redo            set     keys rewritten since enqueued: run again
P:job:{id}:follow:lag             list    seconds from arrival to outcome, newest first
P:job:{id}:follow:wake            list    pushed on close, so a sleeping producer wakes
P:following                       hash    follow identity -> open job id
P:following:opening:{ident}       string  lock around finding or opening that job
P:leases                          zset    lease id -> deadline (epoch s) of messages in flight
P:lease:{id}                      hash    job, job_key, task, queue, body, holder, item, units
P:workers                         zset    worker node -> expiry of its last announcement
P:worker:{node}                   string  JSON {node, queues, pid, seen_at}, with a TTL
================================  ======  ========================================================

Each job key expires only through retention; leases are deleted when released; presence and
producer beats expire by TTL. Celery's own keys (queues ``framefleet.<model>``, ``unacked``,
``unacked_index``) are kombu's (`framefleet.state.broker` reads their lengths).
"""

from __future__ import annotations

from dataclasses import dataclass

from framefleet.core import defaults

JOB_KEYS: dict[str, bool] = {
    "done": True,
    "failed": True,
    "counted": True,
    "retrying": True,
    "crashes": True,
    "videos": True,
    "follow:seen": True,
    "follow:unsent": True,
    "follow:arrived": True,
    "follow:redo": True,
    "follow:lag": True,
    "finished": False,
    "producer": False,
    "follow": False,
    "follow:wake": False,
}
"""Suffixes of ``P:job:{id}``: True for per-item keys (retention expires them when the job ends).
Each video adds its own two per-item keys (``video:{item}`` and ``video:{item}:done``)."""

PER_ITEM: tuple[str, ...] = tuple(suffix for suffix, per_item in JOB_KEYS.items() if per_item)
"""The per-item suffixes, in the order the retention script walks them."""


@dataclass(frozen=True)
class Keys:
    """Builds framefleet's Redis keys under ``prefix``.

    Example:
        >>> keys = Keys("framefleet")
        >>> keys.job("20261205-1"), keys.job_part("20261205-1", "done")
        ('framefleet:job:20261205-1', 'framefleet:job:20261205-1:done')
    """

    prefix: str = defaults.KEY_PREFIX

    @property
    def jobs(self) -> str:
        """Job ids by creation time."""
        return f"{self.prefix}:jobs"

    def job(self, job_id: str) -> str:
        """The job hash (and the stem of every other key of the job)."""
        return f"{self.prefix}:job:{job_id}"

    def job_part(self, job_id: str, suffix: str) -> str:
        """The job's ``suffix`` key (one of `JOB_KEYS`)."""
        if suffix not in JOB_KEYS:
            raise ValueError(f"no job key {suffix!r}; the layout has {sorted(JOB_KEYS)}")
        return f"{self.job(job_id)}:{suffix}"

    def video(self, job_id: str, item: str) -> str:
        """Video ``item``'s segment hash."""
        return f"{self.job(job_id)}:video:{item}"

    def video_done(self, job_id: str, item: str) -> str:
        """Video ``item``'s set of segments recorded done."""
        return f"{self.video(job_id, item)}:done"

    @property
    def job_prefix(self) -> str:
        """What every job key starts with (a purge scans for it)."""
        return f"{self.prefix}:job:"

    @property
    def following(self) -> str:
        """Follow identity -> open job id."""
        return f"{self.prefix}:following"

    def opening(self, ident: str) -> str:
        """The lock around finding or opening the following job of ``ident``."""
        return f"{self.following}:opening:{ident}"

    @property
    def leases(self) -> str:
        """Lease ids by deadline."""
        return f"{self.prefix}:leases"

    @property
    def lease_prefix(self) -> str:
        """What a lease hash's key starts with (scripts append the lease id)."""
        return f"{self.prefix}:lease:"

    def lease(self, lease_id: str) -> str:
        """A lease hash."""
        return self.lease_prefix + lease_id

    @property
    def workers(self) -> str:
        """Live worker nodes by expiry."""
        return f"{self.prefix}:workers"

    def worker(self, node: str) -> str:
        """A worker node's announcement."""
        return f"{self.prefix}:worker:{node}"
