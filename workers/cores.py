"""Which cores a worker process computes on: its engine threads, and the cores it is pinned to.

A pool process runs three busy threads (reader, forward, writer). Left to the scheduler, with as
many processes as cores, they hop between cores and evict each other's caches: on the 2-core
benchmark machine the pipeline used about 10 % more CPU per image than with each process kept
on a core of its own (`benchmarks.throughput`'s pipeline figures). So each pool process is
pinned to its own cores when the node owns the machine's cores exactly (the default, ``auto``):
``concurrency × engine threads`` equals the cores this process may run on. Two nodes sharing a
machine, or a node given fewer processes than cores, are not pinned (they could land on the
same cores while others sit idle); ``FRAMEFLEET_PIN_CPUS=on`` pins them anyway, ``off`` never.
"""

from __future__ import annotations

import logging
import os

from framefleet.core.settings import Settings

log = logging.getLogger(__name__)


def cv_threads(settings: Settings) -> int:
    """Engine threads per process (OpenCV's, and each onnxruntime session's):
    ``settings.cv_threads``, or by default cores // concurrency so processes × threads never
    exceeds the cores. Several worker nodes on one machine should set it
    (FRAMEFLEET_CV_THREADS), since each node knows only its own concurrency."""
    return settings.cv_threads or max(1, (os.cpu_count() or 1) // settings.concurrency)


def allowed_cores() -> list[int]:
    """The cores this process may run on (its cgroup or taskset), sorted."""
    return sorted(os.sched_getaffinity(0))


def cores_for(index: int, threads: int, allowed: list[int]) -> list[int]:
    """The ``threads`` cores of pool process ``index``: consecutive slices of ``allowed``,
    wrapping round when there are more processes than slices.

    Example:
        >>> cores_for(1, 2, [0, 1, 2, 3])
        [2, 3]
    """
    start = (index * threads) % len(allowed)
    return [allowed[(start + k) % len(allowed)] for k in range(min(threads, len(allowed)))]


def pin(settings: Settings, index: int | None) -> list[int] | None:
    """Pin this pool process (number ``index`` of the node's pool, None outside a pool) to its
    cores, as ``settings.pin_cpus`` says; the cores, or None if it was left unpinned."""
    mode = settings.pin_cpus
    if mode == "off" or index is None or not hasattr(os, "sched_setaffinity"):
        return None
    allowed = allowed_cores()
    threads = cv_threads(settings)
    if mode == "auto" and (
        settings.concurrency * threads != len(allowed) or index >= settings.concurrency
    ):
        return None
    cores = cores_for(index, threads, allowed)
    try:
        os.sched_setaffinity(0, cores)
    except OSError as exc:  # a container may forbid it; running unpinned is still correct
        log.warning("could not pin worker process %d to cores %s: %s", index, cores, exc)
        return None
    log.info("worker process %d pinned to cores %s", index, cores)
    return cores


def pool_index() -> int | None:
    """This process's number in the Celery prefork pool (0 .. concurrency-1; a replaced process
    takes the number of the one it replaces), or None outside a pool (solo, threads, a test)."""
    import billiard.process

    index = getattr(billiard.process.current_process(), "index", None)
    return index if isinstance(index, int) else None
