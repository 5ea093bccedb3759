"""Prometheus metrics of a worker: an `Observer` that counts outcomes and times stages.

Multiprocess mode, set up after boot and never at import: `serve` runs in the worker's parent
process before the pool forks. It gives the pool an empty directory (PROMETHEUS_MULTIPROC_DIR)
where each child keeps its own memory-mapped files, and serves ``/metrics`` from the parent by
merging them. Each child then builds its `PrometheusObserver` in ``worker_process_init``.

Metrics (label ``model`` everywhere):

    framefleet_items_processed_total            items recorded done
    framefleet_items_failed_total{error}        items recorded failed, by error class
    framefleet_items_retried_total{error}       items sent back for another attempt
    framefleet_stage_seconds{stage}             read, decode, preprocess, infer, postprocess,
                                                annotate, write (histogram, per item)
    framefleet_messages_total                   messages (batches, video segments) finished
    framefleet_tasks_in_flight                  messages running now (summed over live processes)

Example:
    >>> serve(port=9100)                 # in the worker's parent, before the pool forks
    >>> observer = PrometheusObserver()  # in each pool process, after the fork
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from framefleet.core.errors import ConfigError
from framefleet.core.messages import Message
from framefleet.inference.pipeline import ItemResult
from workers.observers import Observer, Outcome, Phase

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""The variable prometheus-client reads to find the per-process metric files."""

STAGE_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Histogram buckets of one stage of one item, seconds (a JPEG decode to a slow S3 write)."""


def serve(port: int, address: str = "0.0.0.0") -> Path:
    """Enable multiprocess mode for this process and its future children and serve
    ``/metrics`` on ``address:port`` from a thread of this process.

    An existing PROMETHEUS_MULTIPROC_DIR is emptied of old metric files (a restarted worker must
    not report its predecessor's counts); otherwise a fresh temporary directory is made.

    Returns:
        The multiprocess directory.

    Raises:
        ConfigError: the port cannot be bound.
    """
    from prometheus_client import CollectorRegistry, start_http_server, values
    from prometheus_client.multiprocess import MultiProcessCollector

    existing = os.environ.get(MULTIPROC_ENV)
    if existing:
        directory = Path(existing)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    else:
        directory = Path(tempfile.mkdtemp(prefix="framefleet-metrics-"))
        os.environ[MULTIPROC_ENV] = str(directory)
    # prometheus-client picks its value class when first imported; pick again now that the
    # directory is set, whatever imported it before.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    try:
        start_http_server(port, addr=address, registry=registry)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on {address}:{port}: {exc}; choose another --metrics-port "
            "(FRAMEFLEET_METRICS_PORT) or 0 to turn metrics off"
        ) from exc
    log.info("metrics on http://%s:%d/metrics (multiprocess dir %s)", address, port, directory)
    return directory


def process_exited(pid: int) -> None:
    """Drop the live gauges of pool process ``pid`` (called as it shuts down)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class PrometheusObserver(Observer):
    """Counts item outcomes and times stages; build one per pool process, after the fork."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.processed = Counter(
            "framefleet_items_processed",
            "Items recorded done.",
            ["model"],
            registry=None,
        )
        self.failed = Counter(
            "framefleet_items_failed",
            "Items recorded failed, by error class.",
            ["model", "error"],
            registry=None,
        )
        self.retried = Counter(
            "framefleet_items_retried",
            "Items sent back for another attempt (transient failure), by error class.",
            ["model", "error"],
            registry=None,
        )
        self.stages = Histogram(
            "framefleet_stage_seconds",
            "Seconds one item spent in one stage.",
            ["model", "stage"],
            buckets=STAGE_BUCKETS_S,
            registry=None,
        )
        self.messages = Counter(
            "framefleet_messages",
            "Messages (image batches, video segments) finished.",
            ["model"],
            registry=None,
        )
        self.in_flight = Gauge(
            "framefleet_tasks_in_flight",
            "Messages running now.",
            ["model"],
            multiprocess_mode="livesum",
            registry=None,
        )

    def on_message(self, job: Message, phase: Phase) -> None:
        if phase == "started":
            self.in_flight.labels(job.model).inc()
        else:
            self.in_flight.labels(job.model).dec()
            self.messages.labels(job.model).inc()

    def on_item(self, job: Message, result: ItemResult, outcome: Outcome) -> None:
        if outcome == "done":
            self.processed.labels(job.model).inc()
        elif outcome == "failed":
            self.failed.labels(job.model, result.error).inc()
        else:
            self.retried.labels(job.model, result.error).inc()
        if outcome != "retry":  # a retried item is timed on the attempt that settles it
            for stage, ms in result.timings_ms.items():
                self.stages.labels(job.model, stage).observe(ms / 1000)
