"""What a worker process keeps for its whole life: loaded networks, storage clients, job store.

`init_process` fills it once per process, after the fork (Celery's ``worker_process_init``,
sent in every prefork child and in the solo pool). Networks are never loaded in the parent
(a ``cv2.dnn.Net`` does not survive a fork safely) and never per task.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
from dataclasses import dataclass, field

import cv2

from framefleet.core import redisconn
from framefleet.core.control import JobControl
from framefleet.core.errors import PipelineError
from framefleet.core.followstate import FollowStore
from framefleet.core.jobstate import JobStore
from framefleet.core.leases import Heartbeat, LeaseStore
from framefleet.core.modelstore import ModelStore
from framefleet.core.settings import Settings
from framefleet.core.storage import Storage, open_storage
from framefleet.inference.loaded import ModelCache
from framefleet.inference.pipeline import IoThreads, worker_id
from workers import cores
from workers.followlag import FollowLag
from workers.observers import Observers

log = logging.getLogger(__name__)


@dataclass
class WorkerRuntime:
    """Per-process state that tasks read; built by `init_process`."""

    settings: Settings
    models: ModelCache
    jobs: JobStore
    leases: LeaseStore
    heartbeat: Heartbeat
    control: JobControl
    observers: Observers = field(default_factory=Observers)
    io: IoThreads = field(default_factory=IoThreads)  # made after the fork, like everything here
    _storages: dict[str, Storage] = field(default_factory=dict)

    def storage(self, uri: str) -> Storage:
        """The storage rooted at ``uri``, opened once per process."""
        storage = self._storages.get(uri)
        if storage is None:
            storage = self._storages[uri] = open_storage(uri, durable=self.settings.fsync)
        return storage


_runtime: WorkerRuntime | None = None
_pending: tuple[Settings, tuple[str, ...]] | None = None


M_ARENA_MAX = -8
"""glibc's ``mallopt`` parameter number for the most malloc arenas a process may make."""


def _cap_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas in this process. The reader and writer threads (and boto3's)
    would otherwise each get an arena of their own (up to 8 per core), where freed image
    buffers stay mapped and a long-running worker's RSS creeps up. Elsewhere than glibc this
    does nothing."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, arenas)


def init_process(settings: Settings, models: tuple[str, ...]) -> WorkerRuntime:
    """Build this process's runtime and load ``models``.

    A model that fails to load is logged with its reason and left out; its tasks then fail with
    that reason, item by item, instead of killing the process. Redis is not contacted here: a child
    forked while Redis restarts still starts, and its first task waits for Redis
    (``settings.redis_wait_s``) like any other call.
    """
    global _runtime, _pending
    _pending = (settings, models)
    _cap_malloc_arenas()
    cores.pin(settings, cores.pool_index())
    threads = cores.cv_threads(settings)
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
    client = redisconn.connect(settings.redis_url)
    leases = LeaseStore(client, ttl_s=settings.lease_ttl_s, reconnect_s=settings.redis_wait_s)
    jobs = JobStore(client, reconnect_s=settings.redis_wait_s)
    _runtime = WorkerRuntime(
        settings=settings,
        models=registry,
        jobs=jobs,
        leases=leases,
        heartbeat=Heartbeat(leases, holder=worker_id()),
        control=JobControl(jobs),
    )
    _runtime.observers.add(FollowLag(FollowStore(jobs)))
    if settings.metrics_port:  # `framefleet worker` serves them from the parent (workers.metrics)
        from workers.metrics import PrometheusObserver

        _runtime.observers.add(PrometheusObserver())
    return _runtime


def configure(settings: Settings, models: tuple[str, ...]) -> None:
    """Remember what `init_process` needs, so `current` can build the runtime itself in a process
    where the ``worker_process_init`` handler did not run or did not finish."""
    global _pending
    _pending = (settings, models)


def current() -> WorkerRuntime:
    """The runtime of this process.

    Raises:
        PipelineError: the process was never configured (a task called outside a worker).
    """
    if _runtime is None and _pending is not None:
        log.warning("worker runtime missing in this process; initialising it now")
        return init_process(*_pending)
    if _runtime is None:
        raise PipelineError(
            "worker runtime not initialised: tasks run only inside `framefleet worker` or "
            "`celery -A workers.app worker`, which call workers.runtime.init_process"
        )
    return _runtime
