"""The Celery app both sides share: broker settings, task names and queue routing.

The producer sends tasks by name with this app and never imports the worker code (no OpenCV on
the producer side). ``workers.tasks`` registers the task bodies under the same names.

Each model has its own queue, ``framefleet.<model>``: a worker consumes the queues of the models
it has loaded, so a task never lands on a worker that lacks its network, and each model's fleet
scales on its own queue length.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from celery import Celery
from kombu.entity import Exchange, Queue
from kombu.exceptions import BatchPublishError, OperationalError
from kombu.messaging import Producer
from kombu.transport import redis as kombu_redis

from framefleet.core.errors import BrokerError
from framefleet.core.messages import Message
from framefleet.core.redact import redact_url
from framefleet.core.settings import Settings

log = logging.getLogger(__name__)

BATCH_COMMANDS = 1000
"""Redis commands buffered in one publish pipeline before it is sent (kombu's default)."""


TASK_IMAGE_BATCH = "framefleet.image_batch"
"""Task name of `ImageBatch` messages."""

TASK_VIDEO_SEGMENT = "framefleet.video_segment"
"""Task name of `VideoSegment` messages."""

TASK_VIDEO_PLAN = "framefleet.video_plan"
"""Task name of `VideoPlan` messages."""

TASK_VIDEO_MERGE = "framefleet.video_merge"
"""Task name of `VideoMerge` messages."""

TASK_FOR_KIND = {
    "image_batch": TASK_IMAGE_BATCH,
    "video_plan": TASK_VIDEO_PLAN,
    "video_segment": TASK_VIDEO_SEGMENT,
    "video_merge": TASK_VIDEO_MERGE,
}


def queue_name(model: str) -> str:
    """The queue that carries tasks for ``model``."""
    return f"framefleet.{model}"


class _UnackedBookkeeping(kombu_redis.QoS):
    """kombu's record of delivered, unacknowledged messages (for its visibility timeout), sent as
    plain pipelines instead of MULTI/EXEC: two writes on delivery and two on ack, not four each.

    Each pipeline's two writes touch one message's entries in the index and the hash, and kombu
    already tolerates one without the other (`restore_by_tag` skips a tag with no payload), so
    the transaction bought nothing but two commands per write: half a command per image at the
    default batch of 8.
    """

    @contextmanager
    def pipe_or_acquire(self, pipe: Any = None, client: Any = None) -> Iterator[Any]:
        if pipe:
            yield pipe
        else:
            with self.channel.conn_or_acquire(client) as conn:
                yield conn.pipeline(transaction=False)


class _Channel(kombu_redis.Channel):
    QoS = _UnackedBookkeeping


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport, with `_UnackedBookkeeping` (``redis://`` and ``unix://`` brokers;
    a ``rediss://`` broker keeps kombu's own transport, which sets up its TLS from the scheme)."""

    Channel = _Channel


def create_app(settings: Settings, models: Iterable[str] = ()) -> Celery:
    """The Celery app for ``settings``; a worker consumes the queues of ``models``.

    Reliability settings, and why:
    - ``task_acks_late`` + ``task_reject_on_worker_lost``: a task is acknowledged only after it
      ran, so a killed worker's task is redelivered, not lost. Outputs go to deterministic keys and
      outcomes are counted once, so the redelivery is harmless.
    - ``visibility_timeout`` twice the task time limit: Redis redelivers an unacknowledged task
      after this, and it must never do so while the task is still running.
    - ``worker_prefetch_multiplier=1``: tasks are long (a batch of images or a video segment), so a
      worker holds no more than it runs and idle workers get the rest.
    """
    app = Celery("framefleet", broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_time_limit=settings.task_time_limit_s,
        task_soft_time_limit=max(1, settings.task_time_limit_s - 30),
        worker_prefetch_multiplier=1,
        worker_concurrency=settings.concurrency,
        worker_hijack_root_logger=False,
        # No per-task events by default: nobody reads them unless Flower runs, and Flower turns
        # them on itself (its enable_events broadcast) while it watches.
        worker_send_task_events=False,
        task_send_sent_event=False,
        broker_connection_retry_on_startup=True,
        # Publishing rides out a Redis restart for about redis_wait_s (a resent message is
        # harmless: outcomes count once).
        task_publish_retry_policy=publish_retry_policy(settings.redis_wait_s),
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            "socket_connect_timeout": 5,
        },
        task_queues=[model_queue(m) for m in models] or None,
        task_default_queue=queue_name(settings.worker_models[0])
        if settings.worker_models
        else "framefleet",
    )
    if settings.redis_url.startswith(("redis://", "unix://")):
        app.conf.broker_transport = f"{__name__}:RedisTransport"
    return app


def model_queue(model: str) -> Queue:
    """The queue of ``model``'s messages, on a direct exchange of the same name with its name as
    the routing key: what a producer that declares nothing publishes to. (Left to Celery, every
    queue a worker consumed was bound to the first one's exchange and key, and the worker banner
    read ``framefleet.yunet exchange=framefleet.yolox-nano(direct)``.)"""
    name = queue_name(model)
    exchange = Exchange(name, type="direct")  # type: ignore[no-untyped-call]
    return Queue(name, exchange, routing_key=name)  # type: ignore[no-untyped-call]


def task_options(job: Message) -> dict[str, str]:
    """Options of every send of ``job`` (first send and retries): its model's queue, and the
    readable arguments Flower shows instead of the raw message (`Message.describe`)."""
    return {"queue": queue_name(job.model), "argsrepr": job.describe(), "kwargsrepr": "{}"}


def publish_retry_policy(wait_s: float) -> dict[str, float]:
    """Kombu's retry policy for publishing, spanning about ``wait_s`` seconds: pauses of 0.5,
    1.5, 2.5, 3.5, 4.5 s, then 5 s each."""
    first = 12.5  # the five growing pauses
    retries = 5 + math.ceil(max(0.0, wait_s - first) / 5) if wait_s > 0 else 0
    return {"max_retries": retries, "interval_start": 0.5, "interval_step": 1, "interval_max": 5}


def send_job(app: Celery, job: Message) -> None:
    """Enqueue ``job`` on its model's queue (kombu retries the publish per its retry policy).

    Raises:
        BrokerError: the broker is unreachable.
    """
    try:
        with app.producer_or_acquire() as producer:
            _send(app, producer, job)
    except OperationalError as exc:
        raise _unreachable(app, exc) from exc


def send_jobs(app: Celery, jobs: Sequence[Message]) -> None:
    """Enqueue each of ``jobs`` on its model's queue in one Redis pipeline (kombu's publish
    batch): one round trip and one client for the lot instead of one each, which were about half
    of the producer's time (py-spy). A batch is not retried by kombu, so a failed one is sent
    again whole, with the pauses of the app's publish retry policy (`publish_retry_policy`); a
    message that did get through is then sent twice, which is harmless (outcomes count once).

    Raises:
        BrokerError: the broker stayed unreachable through the retry policy.
    """
    policy = app.conf.task_publish_retry_policy or {}
    pause = float(policy.get("interval_start", 0.5))
    for attempt in itertools.count():
        try:
            with app.producer_or_acquire() as producer, producer.batch(max_size=BATCH_COMMANDS):
                declared: set[str] = set()
                for job in jobs:
                    # Each queue is declared by its first message only: kombu's own check of
                    # "declared already" hashes the whole queue, a tenth of the producer's time.
                    _send(app, producer, job, declare=queue_name(job.model) not in declared)
                    declared.add(queue_name(job.model))
            return
        except OperationalError as exc:  # kombu already retried it per the policy
            raise _unreachable(app, exc) from exc
        except BatchPublishError as exc:
            if attempt >= int(policy.get("max_retries", 0)):
                raise _unreachable(app, exc) from exc
            log.warning(
                "could not enqueue %d messages (%s); again in %.1f s", len(jobs), exc, pause
            )
            time.sleep(pause)
            step, most = float(policy.get("interval_step", 1)), float(policy.get("interval_max", 5))
            pause = min(pause + step, most)


def _send(app: Celery, producer: Producer, job: Message, declare: bool = True) -> None:
    options: dict[str, Any] = (
        {**task_options(job)} if declare else {**task_options(job), "declare": []}
    )
    app.send_task(TASK_FOR_KIND[job.kind], args=[job.encode()], producer=producer, **options)


def _unreachable(app: Celery, exc: Exception) -> BrokerError:
    return BrokerError(
        f"cannot enqueue on the broker {redact_url(app.conf.broker_url)}: {exc}; check that "
        "redis-server runs there, or set FRAMEFLEET_REDIS_URL / --redis-url"
    )
