"""Redis connections that ride out a restart: bounded retries with backoff, one log line each.

A Redis restart (AOF on, as deploy configures it) takes seconds; a worker, ``submit --wait`` or
``status --watch`` should say so and carry on, not die. `call` retries a Redis call on connection
errors with exponential backoff until ``wait_s`` has passed since the first failure, logging one
line per retry (never a traceback), then raises `BrokerError`, which the CLI turns into exit 5.

Only connection-level errors are retried (refused, reset, timeout, "LOADING" while Redis replays
its AOF); a wrong command or a script error is raised at once. The callable is called again
whole, so it must be safe to repeat: build a pipeline inside it, not outside. redis-py empties a
pipeline's queued commands when ``execute()`` fails, so an ``execute`` retried on its own sends
nothing and returns ``[]``: `Connection.pipeline` takes the commands as a function and builds the
pipeline anew on every attempt. Every script is written so that running it twice (its reply lost
with the connection) changes nothing more than running it once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis
from redis.client import Pipeline
from redis.commands.core import Script

from framefleet.core.errors import BrokerError
from framefleet.state import scripts

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)
"""Errors that mean "Redis is not there right now" (BusyLoadingError is a ConnectionError)."""

FIRST_DELAY_S = 0.5
"""First pause after a failed call; doubles per retry up to `MAX_DELAY_S`."""

MAX_DELAY_S = 5.0
"""Longest pause between two attempts."""


def connect(url: str) -> redis.Redis:
    """A client for ``url`` with short connect timeouts (no connection is made yet).

    Example:
        >>> client = connect("redis://127.0.0.1:6379/0")
        >>> call(client.ping, client, wait_s=60)
        True
    """
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=5,
        socket_timeout=30,
        health_check_interval=30,
        retry_on_timeout=True,
    )


def describe(client: redis.Redis) -> str:
    """``redis://host:port/db`` (or ``unix://path``) of ``client``, without any password."""
    kw = client.connection_pool.connection_kwargs
    if "path" in kw:
        return f"unix://{kw['path']}"
    return f"redis://{kw.get('host', '?')}:{kw.get('port', '?')}/{kw.get('db', 0)}"


def unreachable(client: redis.Redis, exc: Exception) -> BrokerError:
    """The error raised when Redis failed for good: says where and what to check."""
    return BrokerError(
        f"Redis at {describe(client)} failed: {exc}; check that redis-server runs there, or set "
        "FRAMEFLEET_REDIS_URL / --redis-url"
    )


def call(
    fn: Callable[[], T],
    client: redis.Redis,
    wait_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``fn()``, retried on connection errors for up to ``wait_s`` seconds.

    Args:
        fn: the Redis call; called again whole on each retry.
        client: the client ``fn`` uses (named in messages).
        wait_s: how long Redis may stay unreachable before giving up; 0: fail at once.

    Raises:
        BrokerError: Redis stayed unreachable for ``wait_s`` seconds, or failed otherwise.
    """
    deadline: float | None = None
    delay = FIRST_DELAY_S
    while True:
        try:
            return fn()
        except RETRYABLE as exc:
            now = time.monotonic()
            if deadline is None:
                deadline = now + wait_s
            if now >= deadline:
                if wait_s > 0:
                    log.error(
                        "Redis at %s still unreachable after %g s; giving up",
                        describe(client),
                        wait_s,
                    )
                raise unreachable(client, exc) from exc
            pause = min(delay, deadline - now)
            log.warning(
                "Redis at %s unreachable (%s); reconnecting in %.1f s (giving up in %.1f s)",
                describe(client),
                _one_line(exc),
                pause,
                deadline - now,
            )
            sleep(pause)
            delay = min(delay * 2, MAX_DELAY_S)
        except redis.RedisError as exc:
            raise unreachable(client, exc) from exc


def _one_line(exc: Exception) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0][:200]


class Connection:
    """A Redis client with its reconnect policy: every call of the fleet state goes through it.

    Args:
        client: a redis-py client (decode_responses=True; `connect` makes one).
        reconnect_s: how long a call waits for an unreachable Redis (retrying with backoff, one
            log line per retry) before raising `BrokerError`; 0 fails at once.

    Example:
        >>> conn = Connection(connect("redis://127.0.0.1:6379/0"), reconnect_s=60)
        >>> conn.pipeline(lambda pipe: pipe.set("a", 1).incr("a"))
        [True, 2]
    """

    def __init__(self, client: redis.Redis, reconnect_s: float = 0.0) -> None:
        self.client = client
        self.reconnect_s = reconnect_s
        self._scripts: dict[str, Script] = {}

    @classmethod
    def from_url(cls, url: str, reconnect_s: float = 0.0) -> Connection:
        """A connection to the Redis at ``url`` (nothing is sent yet)."""
        return cls(connect(url), reconnect_s)

    def describe(self) -> str:
        """``redis://host:port/db`` of this connection, without any password."""
        return describe(self.client)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` (a client method), riding out a restart for ``reconnect_s``."""
        return call(lambda: fn(*args, **kwargs), self.client, self.reconnect_s)

    def pipeline(self, build: Callable[[Any], object], transaction: bool = True) -> list[Any]:
        """Run the commands ``build`` queues on a fresh pipeline, as one round trip (MULTI/EXEC
        when ``transaction``); built again on every attempt, so a retried write lands whole."""

        def run() -> list[Any]:
            pipe: Pipeline = self.client.pipeline(transaction=transaction)
            build(pipe)
            return list(pipe.execute())

        return call(run, self.client, self.reconnect_s)

    def script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run script ``name`` (``lua/{name}.lua``) by SHA, loading it on first use."""
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.client.register_script(scripts.source(name))
        return call(lambda: script(keys=list(keys), args=list(args)), self.client, self.reconnect_s)


def wait_ready(url: str, timeout_s: float, alive: Callable[[], bool] = lambda: True) -> bool:
    """Ping the Redis at ``url`` until it answers (True), ``timeout_s`` passes or ``alive()``
    turns False (False): for tools that start a redis-server and wait for it."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    deadline = time.monotonic() + timeout_s
    try:
        while alive() and time.monotonic() < deadline:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                time.sleep(0.05)
        return False
    finally:
        client.close()
