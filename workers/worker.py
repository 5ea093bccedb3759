"""Build the worker's Celery app: tasks registered, networks loaded after the fork, and in the
main process a sweeper of expired leases and a heartbeat in the live-worker registry."""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery
from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from framefleet.core.settings import Settings
from framefleet.queue import create_app
from framefleet.state.jobs import JobStore
from framefleet.state.presence import Presence
from workers import metrics, runtime, tasks, video_tasks
from workers.presence import PresenceBeat
from workers.sweeper import Sweeper


def worker_models(settings: Settings) -> tuple[str, ...]:
    """The models this worker serves: FRAMEFLEET_WORKER_MODELS, else the registry's default."""
    return settings.worker_models or (settings.registry().default,)


class OneLineErrors(logging.Filter):
    """Turns a logged traceback into its last line: Celery logs a full traceback for every lost
    broker connection, and a Redis restart should read as one line per retry."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            first = (str(exc) or "").strip().splitlines()[:1]
            record.msg = f"{record.getMessage()} ({type(exc).__name__}: {''.join(first)})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


QUIET_LOGGERS = (
    "celery.worker.consumer.consumer",
    "celery.worker.consumer.gossip",
    "celery.worker.request",
    "celery.bootsteps",  # closing channels of a connection that is gone
)
"""Loggers whose tracebacks are cut to one line: connection loss and reconnection, and a pool
process lost (killed); the task's own errors keep their traceback (celery.app.trace)."""


def build_app(settings: Settings) -> Celery:
    """The Celery app of a worker serving `worker_models`: consumes their queues, loads their
    networks once in each worker process (``worker_process_init``), never in the parent, and
    sweeps expired leases from the main process (``worker_ready``).

    With ``settings.metrics_port``, the parent serves Prometheus metrics from ``worker_init``
    (after boot, before the pool forks) and each pool process observes its own outcomes."""
    models = worker_models(settings)
    app = create_app(settings, models)
    tasks.register(app)
    video_tasks.register(app)
    runtime.configure(settings, models)
    sweepers: list[Sweeper] = []
    beats: list[PresenceBeat] = []

    def _init(**_: Any) -> None:
        runtime.init_process(settings, models)

    def _ready(sender: Any = None, **_: Any) -> None:
        for name in QUIET_LOGGERS:
            logging.getLogger(name).addFilter(OneLineErrors())
        sweeper = Sweeper(app, settings, name=str(getattr(sender, "hostname", "worker")))
        sweeper.start()
        sweepers.append(sweeper)
        # The queues it really consumes: `celery -A workers.app worker -Q ...` may pick fewer.
        queues = [q.name for q in sender.task_consumer.queues]
        presence = Presence(JobStore.from_url(settings.redis_url, ping=False).conn)
        beat = PresenceBeat(presence, str(sender.hostname), queues)
        beat.start()
        beats.append(beat)

    def _shutdown(**_: Any) -> None:
        for sweeper in sweepers:
            sweeper.stop()
        for beat in beats:
            beat.stop()

    # weak=False: the closures have no other reference and would be collected at once.
    worker_process_init.connect(_init, weak=False)
    worker_ready.connect(_ready, weak=False)
    worker_shutdown.connect(_shutdown, weak=False)
    if settings.metrics_port:

        def _serve(**_: Any) -> None:
            metrics.serve(settings.metrics_port)

        def _exit(**_: Any) -> None:
            metrics.process_exited(os.getpid())

        worker_init.connect(_serve, weak=False)
        worker_process_shutdown.connect(_exit, weak=False)
    return app
