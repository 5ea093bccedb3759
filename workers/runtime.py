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

from framefleet.errors import PipelineError
from framefleet.jobstate import JobStore
from framefleet.modelstore import ModelStore
from framefleet.registry import ModelSpec, Registry
from framefleet.settings import Settings
from framefleet.storage import Storage, open_storage
from workers.models import load_adapter
from workers.models.base import Adapter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A ready adapter plus what results must say about it."""

    spec: ModelSpec
    adapter: Adapter
    sha256: str


@dataclass
class ModelRegistry:
    """Networks loaded in this process, by registry name; each is loaded at most once."""

    registry: Registry
    store: ModelStore
    _loaded: dict[str, LoadedModel] = field(default_factory=dict)

    def get(self, name: str) -> LoadedModel:
        """The loaded model ``name``, loading it on first use.

        Raises:
            UnknownModelError, ModelError: the name is unknown or its files cannot be loaded.
        """
        model = self._loaded.get(name)
        if model is None:
            spec = self.registry.get(name)
            adapter = load_adapter(spec, self.store)
            digest = self.store.digest(spec.files["model"])  # cached by load_adapter's check
            model = LoadedModel(spec=spec, adapter=adapter, sha256=digest)
            self._loaded[name] = model
            log.info("pid %d loaded model %s (%s)", os.getpid(), name, spec.description)
        return model

    def names(self) -> list[str]:
        """Names of the models loaded so far."""
        return sorted(self._loaded)


@dataclass
class WorkerRuntime:
    """Per-process state that tasks read; built by `init_process`."""

    settings: Settings
    models: ModelRegistry
    jobs: JobStore
    _storages: dict[str, Storage] = field(default_factory=dict)

    def storage(self, uri: str) -> Storage:
        """The storage rooted at ``uri``, opened once per process."""
        storage = self._storages.get(uri)
        if storage is None:
            storage = self._storages[uri] = open_storage(uri)
        return storage


_runtime: WorkerRuntime | None = None


def cv_threads(settings: Settings) -> int:
    """OpenCV threads per process: ``settings.cv_threads``, or by default cores // concurrency so
    processes × threads never exceeds the cores. Several worker nodes on one machine should set
    it (FRAMEFLEET_CV_THREADS), since each node knows only its own concurrency."""
    return settings.cv_threads or max(1, (os.cpu_count() or 1) // settings.concurrency)


def init_process(settings: Settings, models: tuple[str, ...]) -> WorkerRuntime:
    """Build this process's runtime and load ``models``.

    A model that fails to load is logged with its reason and left out; its tasks then fail with
    that reason, item by item, instead of killing the process.
    """
    global _runtime
    cv2.setNumThreads(cv_threads(settings))
    registry = ModelRegistry(settings.registry(), ModelStore(settings.model_dir))
    for name in models:
        try:
            registry.get(name)
        except PipelineError as exc:
            log.error("model %s not loaded: %s", name, exc)
    _runtime = WorkerRuntime(
        settings=settings, models=registry, jobs=JobStore.from_url(settings.redis_url)
    )
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
