"""Build the worker's Celery app: tasks registered, networks loaded after the fork."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_process_init, worker_process_shutdown

from framefleet.core.settings import Settings
from framefleet.queue import create_app
from workers import metrics, runtime, tasks, video_tasks


def worker_models(settings: Settings) -> tuple[str, ...]:
    """The models this worker serves: FRAMEFLEET_WORKER_MODELS, else the registry's default."""
    return settings.worker_models or (settings.registry().default,)


def build_app(settings: Settings) -> Celery:
    """The Celery app of a worker serving `worker_models`: consumes their queues and loads their
    networks once in each worker process (``worker_process_init``), never in the parent.

    With ``settings.metrics_port``, the parent serves Prometheus metrics from ``worker_init``
    (after boot, before the pool forks) and each pool process observes its own outcomes."""
    models = worker_models(settings)
    app = create_app(settings, models)
    tasks.register(app)
    video_tasks.register(app)

    def _init(**_: Any) -> None:
        runtime.init_process(settings, models)

    # weak=False: the closures have no other reference and would be collected at once.
    worker_process_init.connect(_init, weak=False)
    if settings.metrics_port:

        def _serve(**_: Any) -> None:
            metrics.serve(settings.metrics_port)

        def _exit(**_: Any) -> None:
            metrics.process_exited(os.getpid())

        worker_init.connect(_serve, weak=False)
        worker_process_shutdown.connect(_exit, weak=False)
    return app
