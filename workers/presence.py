"""The worker's heartbeat in the live-worker registry (`framefleet.state.presence`): a thread in
the worker's main process, started once Celery consumes its queues, stopped at shutdown."""

from __future__ import annotations

import logging
import threading

from framefleet.core.errors import BrokerError
from framefleet.state.presence import Presence

log = logging.getLogger(__name__)


class PresenceBeat:
    """Announces ``node`` and its ``queues`` every ``presence.ttl_s / 3`` seconds until stopped.

    A failed announcement (Redis restarting) is one log line; the next beat tries again, and the
    node drops out of the registry only if beats keep failing for ``ttl_s``.

    Example:
        >>> beat = PresenceBeat(Presence(conn), "w1@host", ["framefleet.yunet"])
        >>> beat.start(); ...; beat.stop()
    """

    def __init__(self, presence: Presence, node: str, queues: list[str]) -> None:
        self.presence = presence
        self.node = node
        self.queues = queues
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="framefleet-presence", daemon=True)

    def start(self) -> None:
        """Announce now, then keep announcing from a daemon thread."""
        self._beat()
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and leave the registry."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        try:
            self.presence.leave(self.node)
        except BrokerError as exc:
            log.warning("could not leave the live-worker registry: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self.presence.ttl_s / 3):
            self._beat()

    def _beat(self) -> None:
        try:
            self.presence.announce(self.node, self.queues)
        except BrokerError as exc:
            log.warning("heartbeat to the live-worker registry failed: %s", exc)
