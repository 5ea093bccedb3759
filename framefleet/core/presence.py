"""Which workers are alive and which queues they consume: a heartbeat registry in Redis.

::

    {prefix}:workers            zset    node -> expiry (epoch seconds) of its last heartbeat
    {prefix}:worker:{node}      string  JSON {"node", "queues", "pid", "seen_at"}, expires too

Each worker's main process announces itself every ``ttl / 3`` seconds from a thread, so a worker
busy on a long task (even on the solo pool) stays listed, and a killed one drops out within
``ttl``. Celery's own ``inspect`` would need every worker to answer a broadcast within a timeout;
a worker busy on the solo pool cannot, and the producer would wait that timeout on every submit.

The producer side asks `Presence.consumers` so that a job no live worker will take is said so at
submit time and in `framefleet status`, instead of waiting at 0 % forever.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import redis

from framefleet.core import defaults


@dataclass(frozen=True)
class LiveWorker:
    """One worker node that announced itself within the last ``ttl`` seconds."""

    node: str
    queues: tuple[str, ...]
    seen_at: float


class Presence:
    """The live-worker registry.

    Args:
        client: a redis-py client (decode_responses=True), e.g. ``JobStore.client``.
        prefix: namespace of the keys (the job state's).
        ttl_s: seconds a node stays live after its last announcement.

    Example:
        >>> presence = Presence(JobStore.from_url(url).client)
        >>> presence.announce("w1@host", ["framefleet.yolox-nano"])
        >>> [w.node for w in presence.consumers("framefleet.yolox-nano")]
        ['w1@host']
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = defaults.KEY_PREFIX,
        ttl_s: float = defaults.PRESENCE_TTL_S,
    ) -> None:
        self.client = client
        self.index = f"{prefix}:workers"
        self.prefix = prefix
        self.ttl_s = ttl_s

    def _key(self, node: str) -> str:
        return f"{self.prefix}:worker:{node}"

    def announce(self, node: str, queues: list[str] | tuple[str, ...]) -> None:
        """Record ``node`` as live, consuming ``queues``, for the next ``ttl_s`` seconds."""
        now = time.time()
        doc = {"node": node, "queues": list(queues), "pid": os.getpid(), "seen_at": now}
        pipe = self.client.pipeline()
        pipe.set(self._key(node), json.dumps(doc), ex=max(1, round(self.ttl_s)))
        pipe.zadd(self.index, {node: now + self.ttl_s})
        pipe.zremrangebyscore(self.index, "-inf", now)  # forget nodes that stopped beating
        pipe.execute()

    def leave(self, node: str) -> None:
        """Remove ``node`` at once (a worker shutting down cleanly)."""
        pipe = self.client.pipeline()
        pipe.delete(self._key(node))
        pipe.zrem(self.index, node)
        pipe.execute()

    def live(self) -> list[LiveWorker]:
        """Every node that announced itself within ``ttl_s``, by name."""
        nodes = [str(n) for n in self.client.zrangebyscore(self.index, time.time(), "+inf")]
        if not nodes:
            return []
        workers = []
        for raw in self.client.mget([self._key(n) for n in nodes]):
            if raw is None:  # expired between the two reads
                continue
            doc = json.loads(raw)
            workers.append(LiveWorker(doc["node"], tuple(doc["queues"]), float(doc["seen_at"])))
        return sorted(workers, key=lambda w: w.node)

    def consumers(self, queue: str) -> list[LiveWorker]:
        """The live nodes that consume ``queue``."""
        return [w for w in self.live() if queue in w.queues]
