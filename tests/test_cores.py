"""Each worker process on its own cores (`workers.cores`): the slices, when ``auto`` pins, and a
real `framefleet worker` whose pool processes are pinned, run a job, and keep their core when one
is killed and replaced."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import pytest
from fleet import Fleet, wait_for_job
from test_e2e import upload

from benchmarks.procstats import child_pids
from framefleet.core.errors import ConfigError
from framefleet.core.settings import Settings
from framefleet.core.storage import open_storage
from framefleet.queue import create_app
from framefleet.services.processes import start_worker
from framefleet.state.jobs import JobStore
from producer.submit import submit
from workers import cores


def test_cores_for_gives_each_process_its_own_slice() -> None:
    allowed = [0, 1, 2, 3, 4, 5]
    assert [cores.cores_for(i, 1, allowed) for i in range(6)] == [[c] for c in allowed]
    assert [cores.cores_for(i, 2, allowed) for i in range(3)] == [[0, 1], [2, 3], [4, 5]]
    assert cores.cores_for(3, 2, allowed) == [0, 1]  # more processes than slices: wrap round
    assert cores.cores_for(0, 8, [2, 5]) == [2, 5]  # never more cores than there are


def test_pin_mode_is_checked() -> None:
    with pytest.raises(ConfigError, match="pin_cpus must be one of auto, on, off"):
        Settings.from_env({"FRAMEFLEET_PIN_CPUS": "yes"})
    assert Settings.from_env({}).pin_cpus == "off"


def _pin_in_child(settings: Settings, index: int | None, out: mp.Queue) -> None:  # type: ignore[type-arg]
    cores.pin(settings, index)
    out.put(sorted(os.sched_getaffinity(0)))


def pinned_to(settings: Settings, index: int | None) -> list[int]:
    """The cores a fresh process is on after `cores.pin` (run in a child: pinning is for life)."""
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    child = ctx.Process(target=_pin_in_child, args=(settings, index, out))
    child.start()
    found = out.get(timeout=30)
    child.join(30)
    return list(found)


def test_auto_pins_only_a_node_that_owns_the_cores_exactly() -> None:
    allowed = cores.allowed_cores()
    owner = Settings(concurrency=len(allowed), cv_threads=1, pin_cpus="auto")
    assert [pinned_to(owner, i) for i in range(len(allowed))] == [[c] for c in allowed]
    assert pinned_to(owner, None) == allowed  # solo pool, a test, a script: left alone
    assert pinned_to(owner.with_(pin_cpus="off"), 0) == allowed
    if len(allowed) > 1:
        # Fewer processes than cores (or two nodes sharing the machine): not pinned, unless on.
        sharing = Settings(concurrency=1, cv_threads=1, pin_cpus="auto")
        assert pinned_to(sharing, 0) == allowed
        assert pinned_to(sharing.with_(pin_cpus="on"), 0) == [allowed[0]]


def affinities(pids: list[int]) -> list[list[int]]:
    return sorted(sorted(os.sched_getaffinity(pid)) for pid in pids)


def pool_of(worker_pid: int, size: int, timeout_s: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while len(pids := child_pids(worker_pid)) != size:
        assert time.monotonic() < deadline, f"pool has {pids}, want {size} processes"
        time.sleep(0.1)
    return pids


@pytest.mark.integration
def test_a_real_pool_is_pinned_runs_a_job_and_a_replaced_process_keeps_its_core(
    settings: Settings, tmp_path: Path, media_images: list[Path]
) -> None:
    allowed = cores.allowed_cores()
    procs = len(allowed)
    env = {**Fleet(settings, tmp_path).env(), "FRAMEFLEET_CV_THREADS": "1"}
    env["FRAMEFLEET_PIN_CPUS"] = "auto"
    worker = start_worker("pinned", env, tmp_path, "--concurrency", str(procs))
    try:
        pool = pool_of(worker.pid, procs)
        assert affinities(pool) == [[c] for c in allowed], worker.log()[-2000:]
        assert "pinned to cores" in worker.log()

        # A killed pool process is replaced under the same index, so on the core it freed:
        # the pool still covers every core once.
        victim = pool[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while victim in (pool := child_pids(worker.pid)) or len(pool) != procs:
            assert time.monotonic() < deadline, worker.log()[-2000:]
            time.sleep(0.1)
        assert affinities(pool) == [[c] for c in allowed], worker.log()[-2000:]

        # The pinned pool does real work.
        upload(open_storage(str(tmp_path / "in")), media_images[:4])
        app = create_app(settings)
        result = submit(settings, app, str(tmp_path / "in"), str(tmp_path / "out"), "yolox-nano")
        record = wait_for_job(JobStore.from_url(settings.redis_url), result.job_id or "")
        assert (record.done, record.failed) == (4, 0)
    finally:
        worker.stop(timeout_s=20)
    unpinned = start_worker(
        "unpinned", {**env, "FRAMEFLEET_PIN_CPUS": "off"}, tmp_path, "--concurrency", str(procs)
    )
    try:
        assert affinities(pool_of(unpinned.pid, procs)) == [allowed] * procs
    finally:
        unpinned.stop(timeout_s=20)
