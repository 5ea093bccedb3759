"""Horizontal scaling and graceful shutdown with real worker processes: workers as separate hosts
(own node names and processes) on one Redis and one S3 server share one job, a third one added
mid-job takes work, and SIGTERM (what Kubernetes and docker send) finishes or returns the task in
hand with nothing lost or done twice."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest
import redis
from fleet import Fleet, wait_for_job
from test_e2e import upload

from framefleet.core.outputs import result_key
from framefleet.core.settings import Settings
from framefleet.core.storage import open_storage
from framefleet.queue import create_app, queue_name
from framefleet.services.processes import LoggedProcess
from framefleet.state.jobs import JobStore
from producer.submit import submit

pytestmark = pytest.mark.integration

SUCCEEDED = re.compile(r"Task framefleet\.image_batch\[[0-9a-f-]+\] succeeded")
RECEIVED = re.compile(r"Task framefleet\.image_batch\[[0-9a-f-]+\] received")


def node_of(worker: LoggedProcess) -> str:
    """The node name the worker announced (``name@host``)."""
    found = re.search(r"(\S+@\S+) ready\.", worker.log())
    assert found, worker.log()[-2000:]
    return found.group(1)


def tasks_run(worker: LoggedProcess) -> int:
    return len(SUCCEEDED.findall(worker.log()))


def test_one_job_split_across_hosts_and_a_third_joins_mid_job(
    settings: Settings, fleet: Fleet, s3_server, job_store: JobStore, media_images: list[Path]
) -> None:
    settings = settings.with_(batch_size=1)
    fleet.settings = settings
    fleet.extra_env = s3_server.env()
    s3_server.create_bucket("scaling")
    src = open_storage("s3://scaling/in/")
    keys = [k for copy in range(8) for k in upload(src, media_images, prefix=f"c{copy}/")]
    # Two "hosts": separate processes with their own node names, one Redis, one S3 server.
    alpha = fleet.start("alpha", "--hostname", "alpha@host-a")
    beta = fleet.start("beta", "--hostname", "beta@host-b")
    done = submit(settings, create_app(settings), src.uri, "s3://scaling/out/", "yolox-nano")
    job_id = done.job_id or ""
    wait_for_job(job_store, job_id, until=lambda r: r.processed >= 4)
    gamma = fleet.start("gamma", "--hostname", "gamma@host-c")  # returns once it consumes
    joined_at = job_store.get(job_id)
    assert joined_at.processed < joined_at.total, "the job ended before the third worker joined"
    record = wait_for_job(job_store, job_id)
    assert (record.total, record.done, record.failed) == (len(keys), len(keys), 0)
    fleet.stop()  # a task logs "succeeded" just after it records its item: let them finish

    runs = {node_of(w): tasks_run(w) for w in (alpha, beta, gamma)}
    assert set(runs) == {"alpha@host-a", "beta@host-b", "gamma@host-c"}
    assert runs["alpha@host-a"] > 0, runs
    assert runs["beta@host-b"] > 0, runs
    assert runs["gamma@host-c"] > 0, f"the worker added mid-job took no work: {runs}"
    assert sum(runs.values()) == len(keys), runs  # no task ran twice
    dst = open_storage("s3://scaling/out/")
    writers = {json.loads(dst.read_bytes(result_key(k)))["worker"] for k in keys}
    assert len(writers) == 3  # three processes wrote results


def test_sigterm_finishes_the_task_in_hand_and_loses_nothing(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore, media_images: list[Path]
) -> None:
    settings = settings.with_(batch_size=2)
    fleet.settings = settings
    src = open_storage(str(tmp_path / "in"))
    keys = upload(src, media_images) + upload(src, media_images, prefix="again/")
    first = fleet.start("first")
    done = submit(settings, create_app(settings), src.uri, str(tmp_path / "out"), "yolox-nano")
    job_id = done.job_id or ""
    wait_for_job(job_store, job_id, until=lambda r: r.processed >= 4)

    first.process.send_signal(signal.SIGTERM)  # what `docker stop` and Kubernetes send
    assert first.process.wait(timeout=60) == 0, first.log()[-3000:]
    log = first.log()
    assert "worker: Warm shutdown" in log
    received, succeeded = len(RECEIVED.findall(log)), len(SUCCEEDED.findall(log))
    # A message the consumer fetched as the shutdown began is given back unstarted (at most one:
    # prefetch 1); below, every message not finished here is back in the queue and none is held.
    assert succeeded > 0, log[-3000:]
    assert received - succeeded in (0, 1), log[-3000:]

    stopped = job_store.get(job_id)
    assert stopped.failed == 0
    assert stopped.done == 2 * succeeded  # exactly the finished tasks' items are recorded
    broker = redis.Redis.from_url(settings.redis_url)
    waiting = broker.llen(queue_name("yolox-nano"))
    assert broker.hlen("unacked") == 0  # nothing held by the stopped worker
    assert waiting == done.messages - succeeded  # every other message is back in the queue
    broker.close()

    second = fleet.start("second")
    record = wait_for_job(job_store, job_id)
    assert (record.done, record.failed) == (len(keys), 0)
    second.stop()  # its last "succeeded" line comes just after the last record
    assert succeeded + tasks_run(second) == done.messages  # none lost, none run twice
