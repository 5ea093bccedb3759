"""Producers' beats (real Redis): a job still listing is closed by a resubmission of the same
input, output and model only once its producer is gone; the beat is a lease that one producer
holds at a time, taken over at once from a dead process of this host."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from framefleet.core.errors import ProducerBusy
from framefleet.core.jobrecord import JobStatus
from framefleet.state.beats import ProducerBeat, producer_gone
from framefleet.state.jobs import JobStore
from producer.orphans import close_orphans


def test_a_live_producer_keeps_its_job_and_a_gone_one_loses_it(
    job_store: JobStore, tmp_path: Path
) -> None:
    out = str(tmp_path / "out")
    first = job_store.create("file:///in/", out, "yolox-nano")
    other_model = job_store.create("file:///in/", out, "yunet")  # not the same submission
    with ProducerBeat(job_store, first):
        second = job_store.create("file:///in/", out, "yolox-nano")
        assert not producer_gone(job_store, first)
        assert close_orphans(job_store, second) == []  # still listing in this process
        assert job_store.status(first) is JobStatus.LISTING
    assert producer_gone(job_store, first)  # the beat is gone with the block (or expires)
    third = job_store.create("file:///in/", out, "yolox-nano")
    assert sorted(close_orphans(job_store, third)) == sorted([first, second])
    closed = job_store.get(first)
    assert closed.status is JobStatus.CANCELLED
    assert f"superseded by job {third}" in closed.error
    assert job_store.status(other_model) is JobStatus.LISTING
    assert job_store.status(third) is JobStatus.LISTING
    summary = json.loads((tmp_path / "out" / "_framefleet" / "summary.json").read_text())
    assert summary["status"] == "cancelled"


def dead_pid() -> int:
    """The pid of a process of this host that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_beat_is_a_lease_one_producer_holds_at_a_time(job_store: JobStore) -> None:
    job_id = job_store.create("file:///in/", "file:///out/", "yolox-nano")
    key = job_store.keys.job_part(job_id, "producer")
    with ProducerBeat(job_store, job_id) as first:
        second = ProducerBeat(job_store, job_id)
        second.holder = f"{socket.gethostname()}:{os.getppid()}"  # as another live producer
        assert second.take() == first.holder  # a live producer of this host keeps it
        with pytest.raises(ProducerBusy, match=f"listed by producer {first.holder}"):
            second.__enter__()
        assert job_store.client.get(key) == first.holder
    assert job_store.client.get(key) is None
    # A beat left by a killed producer of this host is taken over at once, not after its TTL.
    job_store.client.set(key, f"{socket.gethostname()}:{dead_pid()}", px=30_000)
    assert ProducerBeat(job_store, job_id).take() is None
    # Another machine's beat is trusted until it lapses.
    job_store.client.set(key, "elsewhere:1", px=30_000)
    assert ProducerBeat(job_store, job_id).take() == "elsewhere:1"


def test_a_producer_whose_beat_was_taken_learns_it_and_leaves_the_new_holder_alone(
    job_store: JobStore,
) -> None:
    job_id = job_store.create("file:///in/", "file:///out/", "yolox-nano")
    key = job_store.keys.job_part(job_id, "producer")
    with ProducerBeat(job_store, job_id, ttl_s=0.3) as beat:
        assert not beat.lost.is_set()
        job_store.client.set(key, "elsewhere:1", px=30_000)  # its beat lapsed; another took it
        assert beat.lost.wait(2), "the renewal did not notice the new holder"
        assert job_store.client.get(key) == "elsewhere:1"  # not renewed over it
    assert job_store.client.get(key) == "elsewhere:1"  # nor deleted on the way out
