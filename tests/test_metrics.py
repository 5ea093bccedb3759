"""Prometheus metrics on real processes: a worker's /metrics (prefork pool, multiprocess mode)
checked against the job's exact counts, the queue exporter, and the healthcheck command."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest
from fleet import Fleet, wait_for_job
from prometheus_client.parser import text_string_to_metric_families
from test_e2e import run_cli, upload

from framefleet.core.settings import Settings
from framefleet.core.storage import open_storage
from framefleet.queue import create_app
from framefleet.services.ports import free_port
from framefleet.state.jobs import JobStore
from producer.submit import submit

pytestmark = pytest.mark.integration


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """{(sample name, labels): value} of a Prometheus text exposition."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return samples(response.read().decode())


def test_worker_metrics_match_the_job(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore, media_images: list[Path]
) -> None:
    src = open_storage(str(tmp_path / "in"))
    upload(src, media_images[:5])
    src.write_bytes("empty.jpg", b"")
    src.write_bytes("text.png", b"not a PNG")
    done = submit(settings, create_app(settings), src.uri, str(tmp_path / "out"), "yolox-nano")
    job_id = done.job_id or ""

    # Before any worker: the exporter sees the waiting messages and the open job.
    exported = run_cli(settings, "exporter", "--once")
    assert exported.returncode == 0, exported.stderr
    queued = samples(exported.stdout)
    assert value(queued, "framefleet_queue_length", model="yolox-nano") == done.messages == 2
    assert value(queued, "framefleet_queue_length", model="yunet") == 0
    assert (
        value(queued, "framefleet_job_items", job_id=job_id, model="yolox-nano", state="total") == 7
    )

    port = free_port()
    fleet.start("metered", "--metrics-port", str(port))
    record = wait_for_job(job_store, job_id)
    assert (record.done, record.failed) == (5, 2)
    # The message that completes the job finishes after it writes the job's report pages.
    deadline = time.monotonic() + 30
    while value(scraped := scrape(port), "framefleet_tasks_in_flight", model="yolox-nano") > 0:
        assert time.monotonic() < deadline, "a message is still in flight 30 s after the job"
        time.sleep(0.2)
    assert value(scraped, "framefleet_items_processed_total", model="yolox-nano") == record.done
    assert (
        value(
            scraped, "framefleet_items_failed_total", model="yolox-nano", error="ImageDecodeError"
        )
        == record.failed
    )
    assert value(scraped, "framefleet_messages_total", model="yolox-nano") == 2
    # every item was read; only the good ones reached inference
    assert value(scraped, "framefleet_stage_seconds_count", model="yolox-nano", stage="read") == 7
    assert value(scraped, "framefleet_stage_seconds_count", model="yolox-nano", stage="infer") == 5
    assert value(scraped, "framefleet_stage_seconds_sum", model="yolox-nano", stage="infer") > 0
    assert value(scraped, "framefleet_tasks_in_flight", model="yolox-nano") == 0

    health = run_cli(settings, "healthcheck", "--metrics-port", str(port))
    assert (health.returncode, health.stdout.strip()) == (0, "ok")
    closed = run_cli(settings, "healthcheck", "--metrics-port", str(free_port()))
    assert closed.returncode == 7
    assert "does not answer" in closed.stderr
    after = samples(run_cli(settings, "exporter", "--once").stdout)
    assert value(after, "framefleet_queue_length", model="yolox-nano") == 0
    assert not any(name == "framefleet_job_items" for name, _ in after)  # finished: not open
