"""Build the worker's Celery app: tasks registered, networks loaded after the fork."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from framefleet.core.settings import Settings
from framefleet.queue import create_app
from workers import runtime, tasks


def worker_models(settings: Settings) -> tuple[str, ...]:
    """The models this worker serves: FRAMEFLEET_WORKER_MODELS, else the registry's default."""
    return settings.worker_models or (settings.registry().default,)


def build_app(settings: Settings) -> Celery:
    """The Celery app of a worker serving `worker_models`: consumes their queues and loads their
    networks once in each worker process (``worker_process_init``), never in the parent."""
    models = worker_models(settings)
    app = create_app(settings, models)
    tasks.register(app)

    def _init(**_: Any) -> None:
        runtime.init_process(settings, models)

    # weak=False: the closure has no other reference and would be collected at once.
    worker_process_init.connect(_init, weak=False)
    return app
