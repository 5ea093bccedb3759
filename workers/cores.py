"""Which cores a worker process computes on: its engine threads, and the cores it is pinned to.

A pool process runs three busy threads (reader, forward, writer). ``FRAMEFLEET_PIN_CPUS=auto``
keeps each pool process on cores of its own when the node owns the machine's cores exactly
(``concurrency × engine threads`` equals the cores this process may run on), so its threads
share one core's caches and never migrate; ``on`` pins whatever the counts, ``off`` (the
default) leaves placement to the kernel. Measured on the 2-core benchmark machine: pinning gave
about 8 % while every image cost ~1,000 page faults (the TLB shootdowns of a process whose
threads run on several cores); once `workers.runtime` kept freed buffers, pinned and unpinned
ran alike, and a pinned process cannot move off a core that Redis or a storage server is busy
on, so it is opt-in.
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
