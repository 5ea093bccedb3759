"""Orphans of killed producers (real Redis): a job still listing is closed by a resubmission of
the same input, output and model only once its producer is gone."""

from __future__ import annotations

import json
from pathlib import Path

from framefleet.core.jobrecord import JobStatus
from framefleet.core.jobstate import JobStore
from framefleet.core.listing import ProducerBeat, close_orphans, producer_gone


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
