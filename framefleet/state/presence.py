"""Which workers are alive and which queues they consume: a heartbeat registry in Redis.

Each node has an entry in the ``workers`` index (by expiry) and a ``worker:{node}`` string (JSON
{"node", "queues", "pid", "seen_at"}, expiring too); see `framefleet.state.keys`.

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

from framefleet.core import defaults
from framefleet.state.connection import Connection
from framefleet.state.keys import Keys


@dataclass(frozen=True)
class LiveWorker:
    """One worker node that announced itself within the last ``ttl`` seconds."""

    node: str
    queues: tuple[str, ...]
    seen_at: float


class Presence:
    """The live-worker registry.

    Args:
        conn: the connection (e.g. ``JobStore.conn``); calls that fail raise `BrokerError`.
        keys: the key layout.
        ttl_s: seconds a node stays live after its last announcement.

    Example:
        >>> presence = Presence(JobStore.from_url(url).conn)
        >>> presence.announce("w1@host", ["framefleet.yolox-nano"])
        >>> [w.node for w in presence.consumers("framefleet.yolox-nano")]
        ['w1@host']
    """

    def __init__(
        self,
        conn: Connection,
        keys: Keys | None = None,
        ttl_s: float = defaults.PRESENCE_TTL_S,
    ) -> None:
        self.conn = conn
        self.keys = keys or Keys()
        self.index = self.keys.workers
        self.ttl_s = ttl_s

    def _key(self, node: str) -> str:
        return self.keys.worker(node)

    def announce(self, node: str, queues: list[str] | tuple[str, ...]) -> None:
        """Record ``node`` as live, consuming ``queues``, for the next ``ttl_s`` seconds."""
        now = time.time()
        doc = {"node": node, "queues": list(queues), "pid": os.getpid(), "seen_at": now}
        self.conn.pipeline(
            lambda pipe: (
                pipe.set(self._key(node), json.dumps(doc), ex=max(1, round(self.ttl_s)))
                .zadd(self.index, {node: now + self.ttl_s})
                .zremrangebyscore(self.index, "-inf", now)
            )  # forget nodes that stopped beating
        )

    def leave(self, node: str) -> None:
        """Remove ``node`` at once (a worker shutting down cleanly)."""
        self.conn.pipeline(lambda pipe: pipe.delete(self._key(node)).zrem(self.index, node))

    def live(self) -> list[LiveWorker]:
        """Every node that announced itself within ``ttl_s``, by name."""
        client = self.conn.client
        nodes = [
            str(n) for n in self.conn.call(client.zrangebyscore, self.index, time.time(), "+inf")
        ]
        if not nodes:
            return []
        workers = []
        for raw in self.conn.call(client.mget, [self._key(n) for n in nodes]):
            if raw is None:  # expired between the two reads
                continue
            doc = json.loads(raw)
            workers.append(LiveWorker(doc["node"], tuple(doc["queues"]), float(doc["seen_at"])))
        return sorted(workers, key=lambda w: w.node)

    def consumers(self, queue: str) -> list[LiveWorker]:
        """The live nodes that consume ``queue``."""
        return [w for w in self.live() if queue in w.queues]
