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

from framefleet.core.errors import PipelineError
from framefleet.core.modelstore import ModelStore
from framefleet.core.settings import Settings
from framefleet.core.storage import Storage, open_storage
from framefleet.inference.loaded import ModelCache
from framefleet.inference.pipeline import IoThreads, worker_id
from framefleet.state.connection import Connection
from framefleet.state.jobs import JobStore
from framefleet.state.leases import Heartbeat, LeaseStore
from workers import cores
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


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
"""glibc's ``mallopt`` parameter numbers (malloc.h)."""

MMAP_THRESHOLD = 32 * 1024 * 1024
"""Allocations below this come from the heap and are reused (glibc's largest allowed value)."""

TRIM_THRESHOLD = 128 * 1024 * 1024
"""Free memory a heap keeps before it gives any back to the kernel."""


def _tune_malloc(arenas: int = 2) -> None:
    """Set glibc's malloc up for a process that frees and allocates image buffers all day.

    - At most ``arenas`` arenas: the reader and writer threads (and boto3's) would otherwise each
      get one (up to 8 per core), where freed image buffers stay mapped and RSS creeps up.
    - Buffers up to 32 MB from the heap, and freed ones kept: by default each decoded image, blob
      and encoded output was a fresh mmap (or a trimmed heap grown again), zeroed by the kernel
      page by page. Measured on yolox-nano, 2 pinned processes: about 1,000 page faults and 3.5 ms
      of kernel time per image, 15 % of the throughput (`benchmarks.throughput`); with these,
      under 30 faults an image, and peak RSS stays under the 350 MB target.

    Setting the thresholds turns off glibc's dynamic ones. Elsewhere than glibc this does nothing.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_ARENA_MAX, arenas)
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)


def init_process(settings: Settings, models: tuple[str, ...]) -> WorkerRuntime:
    """Build this process's runtime and load ``models``.

    A model that fails to load is logged with its reason and left out; its tasks then fail with
    that reason, item by item, instead of killing the process. Redis is not contacted here: a child
    forked while Redis restarts still starts, and its first task waits for Redis
    (``settings.redis_wait_s``) like any other call.
    """
    global _runtime, _pending
    _pending = (settings, models)
    _tune_malloc()
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
    conn = Connection.from_url(settings.redis_url, reconnect_s=settings.redis_wait_s)
    leases = LeaseStore(conn, ttl_s=settings.lease_ttl_s)
    _runtime = WorkerRuntime(
        settings=settings,
        models=registry,
        jobs=JobStore(conn),
        leases=leases,
        heartbeat=Heartbeat(leases, holder=worker_id()),
    )
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
