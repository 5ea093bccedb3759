"""What a worker process keeps for its whole life: loaded networks, storage clients, job store.

`init_process` fills it once per process, after the fork (Celery's ``worker_process_init``,
sent in every prefork child and in the solo pool). Networks are never loaded in the parent
(a ``cv2.dnn.Net`` does not survive a fork safely) and never per task.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import cv2

from framefleet.core.errors import PipelineError
from framefleet.core.jobstate import JobStore
from framefleet.core.modelstore import ModelStore
from framefleet.core.settings import Settings
from framefleet.core.storage import Storage, open_storage
from framefleet.inference.loaded import ModelCache
from workers.observers import Observers

log = logging.getLogger(__name__)


@dataclass
class WorkerRuntime:
    """Per-process state that tasks read; built by `init_process`."""

    settings: Settings
    models: ModelCache
    jobs: JobStore
    observers: Observers = field(default_factory=Observers)
    _storages: dict[str, Storage] = field(default_factory=dict)

    def storage(self, uri: str) -> Storage:
        """The storage rooted at ``uri``, opened once per process."""
        storage = self._storages.get(uri)
        if storage is None:
            storage = self._storages[uri] = open_storage(uri)
        return storage


_runtime: WorkerRuntime | None = None


def cv_threads(settings: Settings) -> int:
    """Engine threads per process (OpenCV's, and each onnxruntime session's):
    ``settings.cv_threads``, or by default cores // concurrency so processes × threads never
    exceeds the cores. Several worker nodes on one machine should set it
    (FRAMEFLEET_CV_THREADS), since each node knows only its own concurrency."""
    return settings.cv_threads or max(1, (os.cpu_count() or 1) // settings.concurrency)


def init_process(settings: Settings, models: tuple[str, ...]) -> WorkerRuntime:
    """Build this process's runtime and load ``models``.

    A model that fails to load is logged with its reason and left out; its tasks then fail with
    that reason, item by item, instead of killing the process.
    """
    global _runtime
    threads = cv_threads(settings)
    cv2.setNumThreads(threads)
    registry = ModelCache(
        settings.registry(),
        ModelStore(settings.model_dir),
        engine=settings.engine,
        threads=threads,
        batch=settings.forward_batch,
    )
    for name in models:
        try:
            registry.get(name)
        except PipelineError as exc:
            log.error("model %s not loaded: %s", name, exc)
    _runtime = WorkerRuntime(
        settings=settings, models=registry, jobs=JobStore.from_url(settings.redis_url)
    )
    if settings.metrics_port:  # `framefleet worker` serves them from the parent (workers.metrics)
        from workers.metrics import PrometheusObserver

        _runtime.observers.add(PrometheusObserver())
    return _runtime


def current() -> WorkerRuntime:
    """The runtime of this process.

    Raises:
        PipelineError: `init_process` has not run here (a task called outside a worker).
    """
    if _runtime is None:
        raise PipelineError(
            "worker runtime not initialised: tasks run only inside `framefleet worker` or "
            "`celery -A workers.app worker`, which call workers.runtime.init_process"
        )
    return _runtime
