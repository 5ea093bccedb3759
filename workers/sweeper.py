"""The sweeper: every worker node resends the messages of expired leases, and watches Redis.

It runs as a daemon thread in the worker's main process (started on Celery's ``worker_ready``),
waking every ``lease_ttl_s / 3`` seconds with some jitter so hundreds of nodes do not sweep in step.
Claiming is one atomic script (`LeaseStore.claim_expired`), so concurrent sweepers never resend
the same lease twice in one expiry.

The same tick is the node's Redis watchdog: while Redis is unreachable it logs one line per tick,
and once it has been unreachable for ``redis_wait_s`` it asks Celery to stop with exit code 5
(the consumer checks that flag between its own reconnection attempts).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable

from celery import Celery

from framefleet.core.errors import BrokerError
from framefleet.core.settings import Settings
from framefleet.state.connection import Connection
from framefleet.state.leases import LeaseStore

log = logging.getLogger(__name__)

EXIT_BROKER = 5
"""Exit code of a worker whose Redis stayed unreachable (the CLI's ``EXIT_BROKER``)."""


def request_exit(code: int) -> None:
    """Ask the Celery worker in this process to shut down with exit ``code``."""
    from celery.worker import state

    state.should_stop = code


class Sweeper:
    """Resends expired leases' messages; gives up on Redis after ``settings.redis_wait_s``.

    Example:
        >>> sweeper = Sweeper(app, settings, name="a@host")
        >>> sweeper.sweep_once()   # messages resent
        0
    """

    def __init__(
        self,
        app: Celery,
        settings: Settings,
        name: str,
        on_give_up: Callable[[int], None] = request_exit,
    ) -> None:
        self.app = app
        self.settings = settings
        self.name = f"sweeper:{name}:{os.getpid()}"
        self.on_give_up = on_give_up
        self.leases = LeaseStore(
            Connection.from_url(settings.redis_url), ttl_s=settings.lease_ttl_s
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._down_since: float | None = None

    def start(self) -> None:
        """Start the sweeping thread."""
        self._thread = threading.Thread(target=self._run, name="framefleet-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread at its next tick."""
        self._stop.set()

    def sweep_once(self) -> int:
        """Claim expired leases, resend their messages, release them; how many were resent.

        Raises:
            BrokerError: Redis is unreachable.
        """
        resent = 0
        for lease in self.leases.claim_expired(self.name):
            where = f" on item {lease.item}" if lease.item else ""
            log.warning(
                "lease %s of job %s expired (holder %s stopped%s); sending its message again",
                lease.lease_id,
                lease.job_id,
                lease.holder or "?",
                where,
            )
            self.app.send_task(lease.task, args=[lease.body], queue=lease.queue)
            self.leases.release(lease.lease_id)
            resent += 1
        return resent

    def _run(self) -> None:
        period = self.settings.lease_ttl_s / 3
        while not self._stop.wait(period * random.uniform(0.8, 1.2)):
            try:
                self.sweep_once()
            except BrokerError as exc:
                self._redis_down(exc)
                continue
            except Exception as exc:  # the sweeper must outlive any one bad lease
                log.error("sweep failed: %s", exc)
            if self._down_since is not None:
                log.warning("Redis is reachable again; carrying on")
                self._down_since = None

    def _redis_down(self, exc: BrokerError) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
        down_s = now - self._down_since
        if down_s >= self.settings.redis_wait_s:
            log.error(
                "Redis unreachable for %.0f s (FRAMEFLEET_REDIS_WAIT_S=%.0f); stopping the worker "
                "with exit code %d",
                down_s,
                self.settings.redis_wait_s,
                EXIT_BROKER,
            )
            self.on_give_up(EXIT_BROKER)
            self._stop.set()
            return
        log.warning(
            "Redis unreachable for %.0f s (%s); waiting for it (giving up after %.0f s)",
            down_s,
            str(exc).split(";")[0],
            self.settings.redis_wait_s,
        )
