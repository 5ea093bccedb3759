"""Queue depth per model and job progress, as Prometheus metrics read from Redis at each scrape.

Workers count what they do (`workers.metrics`); what is waiting is only visible in the broker, so
this small collector reads it there, for dashboards and for autoscalers (KEDA reads the same list
lengths itself)::

    framefleet_queue_length{model}              messages waiting in framefleet.<model>
    framefleet_unacked_messages                 delivered to a worker, not yet acknowledged
                                                (running, prefetched, or held by a dead worker
                                                until the visibility timeout)
    framefleet_job_items{job_id,model,state}    total / done / failed of each open job
    framefleet_job_following{job_id,model}      1 while the job follows its prefix

Example:
    >>> registry = CollectorRegistry()
    >>> registry.register(FleetCollector(JobStore.from_url(url), ["yolox-nano"]))
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from framefleet.queue import queue_name
from framefleet.state.jobs import JobStore

PRIORITY_SEPARATOR = "\x06\x16"
"""Kombu's Redis transport keeps priority levels 3, 6 and 9 of a queue in lists named
``<queue>\\x06\\x16<level>`` beside the plain one (level 0)."""

UNACKED_KEY = "unacked"
"""Kombu's Redis transport hash of delivered, unacknowledged messages (all queues)."""

OPEN_JOBS_SCANNED = 100
"""Most recent jobs looked at for progress on each scrape."""


def queue_keys(model: str) -> list[str]:
    """The Redis lists that hold ``model``'s waiting messages."""
    name = queue_name(model)
    return [name, *(f"{name}{PRIORITY_SEPARATOR}{level}" for level in (3, 6, 9))]


class FleetCollector(Collector):
    """Reads queue lengths and open jobs from Redis on each scrape."""

    def __init__(self, jobs: JobStore, models: Sequence[str]) -> None:
        self.jobs = jobs
        self.models = list(models)

    def queue_lengths(self) -> dict[str, int]:
        """Messages waiting per model (one pipelined round trip)."""
        keys = [key for model in self.models for key in queue_keys(model)]
        lengths = iter(self.jobs.broker_lengths(keys))
        return {model: sum(next(lengths) for _ in range(4)) for model in self.models}

    def collect(self) -> Iterator[Metric]:
        queued = GaugeMetricFamily(
            "framefleet_queue_length", "Messages waiting in framefleet.<model>.", labels=["model"]
        )
        for model, length in self.queue_lengths().items():
            queued.add_metric([model], length)
        yield queued
        unacked = GaugeMetricFamily(
            "framefleet_unacked_messages",
            "Messages delivered to a worker and not yet acknowledged (all queues).",
        )
        unacked.add_metric([], self.jobs.broker_hash_size(UNACKED_KEY))
        yield unacked
        yield from self._jobs()

    def _jobs(self) -> Iterable[Metric]:
        items = GaugeMetricFamily(
            "framefleet_job_items",
            "Items of each open job by state: total, done, failed.",
            labels=["job_id", "model", "state"],
        )
        following = GaugeMetricFamily(
            "framefleet_job_following",
            "1 while the job follows its input prefix.",
            labels=["job_id", "model"],
        )
        for record in self.jobs.recent(OPEN_JOBS_SCANNED):
            if record.finished:
                continue
            for state, value in (
                ("total", record.total),
                ("done", record.done),
                ("failed", record.failed),
            ):
                items.add_metric([record.job_id, record.model, state], value)
            following.add_metric(
                [record.job_id, record.model], 1 if record.params.get("follow") else 0
            )
        yield items
        yield following
