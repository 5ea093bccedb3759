"""`framefleet worker` and `framefleet flower`: run the fleet and watch it."""

from __future__ import annotations

import os
import socket
import sys

import click

from framefleet.cli.base import (
    HELP_EPILOG,
    _exits,
    engine_option,
    main,
    max_pixels_option,
    metrics_port_option,
    setting_option,
)
from framefleet.core.errors import BrokerError, ConfigError
from framefleet.core.settings import Settings


@main.command(epilog=HELP_EPILOG)
@setting_option(
    "-c",
    "--concurrency",
    setting="concurrency",
    type=click.IntRange(1, 256),
    help="Worker processes.",
    default="number of cores",
)
@setting_option(
    "--models",
    setting="worker_models",
    help="Comma-separated models to serve.",
    default="the registry's default",
)
@engine_option(
    "Engine that runs the networks (default: each model's registry entry, else cv2.dnn). "
    "A job's --engine wins.",
    envvar="FRAMEFLEET_ENGINE",
)
@setting_option(
    "--forward-batch",
    setting="forward_batch",
    type=click.IntRange(1, 64),
    help="Most images per forward, where the model file takes a batch.",
)
@max_pixels_option
@click.option("-n", "--hostname", help="Node name, e.g. gpu1@%h (default: framefleet@%h).")
@click.option(
    "--pool",
    type=click.Choice(["prefork", "solo", "threads"]),
    default="prefork",
    show_default=True,
    help="Celery pool.",
)
@click.option("--loglevel", default="INFO", show_default=True)
@metrics_port_option("Serve Prometheus metrics on this port (0: off).")
@setting_option(
    "--lease-ttl",
    "lease_ttl_s",
    setting="lease_ttl_s",
    type=click.FloatRange(1),
    help="Seconds a task's lease lives without a heartbeat; a dead worker's tasks are resent "
    "after about this long.",
)
@setting_option(
    "--max-crashes",
    setting="max_crashes",
    type=click.IntRange(1),
    help="Times an item may kill or hang its worker process before it is failed.",
)
@click.pass_obj
@_exits
def worker(
    settings: Settings,
    concurrency: int | None,
    models: str | None,
    engine: str | None,
    forward_batch: int | None,
    max_pixels: int | None,
    hostname: str | None,
    pool: str,
    loglevel: str,
    metrics_port: int | None,
    lease_ttl_s: float | None,
    max_crashes: int | None,
) -> None:
    """Run a worker: loads its models once per process and consumes their queues.

    Waits for an unreachable Redis up to --redis-wait seconds (one line per retry), then exits 5.
    """
    from framefleet.core.modelstore import ModelStore
    from framefleet.queue import queue_name
    from framefleet.state import connection as redisconn
    from workers.worker import build_app, worker_models

    names = tuple(m.strip() for m in models.split(",") if m.strip()) if models else None
    settings = settings.with_(
        concurrency=concurrency,
        worker_models=names,
        engine=engine,
        forward_batch=forward_batch,
        metrics_port=metrics_port,
        max_pixels=max_pixels,
        lease_ttl_s=lease_ttl_s,
        max_crashes=max_crashes,
    )
    client = redisconn.connect(settings.redis_url)
    redisconn.call(client.ping, client, settings.redis_wait_s)  # BrokerError: exit 5
    client.close()
    served = worker_models(settings)
    registry, store = settings.registry(), ModelStore(settings.model_dir)
    for name in served:  # fetch and verify in the parent: children then only load
        spec = registry.get(name)
        store.files(spec)
        store.labels(spec)
    app = build_app(settings)
    argv = [
        "worker",
        f"--concurrency={settings.concurrency}",
        f"--loglevel={loglevel}",
        f"--pool={pool}",
        f"--hostname={hostname or 'framefleet@%h'}",
        f"--queues={','.join(queue_name(m) for m in served)}",
        "--without-mingle",
    ]
    app.worker_main(argv=argv)
    from celery.worker import state

    from workers.sweeper import EXIT_BROKER

    if state.should_stop == EXIT_BROKER:  # the sweeper gave up on Redis (Celery exits 0 here)
        raise BrokerError(
            f"Redis at {redisconn.describe(client)} stayed unreachable for "
            f"{settings.redis_wait_s:.0f} s (FRAMEFLEET_REDIS_WAIT_S); the worker stopped"
        )


FLOWER_TASK_COLUMNS = "name,state,args,result,exception,received,runtime,worker"
"""Columns of Flower's tasks page: ours carry readable arguments (job, model, item count) and
return their item counts, so those columns say what each task did; the UUID column does not."""


@main.command(epilog=HELP_EPILOG)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=5555,
    show_default=True,
    envvar="FRAMEFLEET_FLOWER_PORT",
    show_envvar=True,
)
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option(
    "--basic-auth",
    envvar="FRAMEFLEET_FLOWER_BASIC_AUTH",
    show_envvar=True,
    help="user:password[,user2:password2]; set it before listening beyond loopback.",
)
@click.pass_obj
@_exits
def flower(settings: Settings, port: int, address: str, basic_auth: str | None) -> None:
    """Flower (Celery's web monitor) on the same broker."""
    _check_port(address, port)
    env = {**os.environ, **settings.to_env()}
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "framefleet.monitor",
        "flower",
        f"--port={port}",
        f"--address={address}",
        f"--tasks_columns={FLOWER_TASK_COLUMNS}",
    ]
    if basic_auth:
        cmd.append(f"--basic-auth={basic_auth}")
    # exec, not a child: signals sent to `framefleet flower` must reach Flower itself.
    os.execve(sys.executable, cmd, env)


def _check_port(address: str, port: int) -> None:
    """Refuse a port another process listens on, before Flower fails on it with a traceback.

    Raises:
        ConfigError: ``port`` is taken on ``address``; the message suggests a free one.
    """
    from framefleet.services.ports import free_port

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as Tornado sets it: a port left in TIME_WAIT is free for Flower too.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            raise ConfigError(
                f"port {port} on {address} is taken ({exc.strerror}): another Flower or server "
                f"listens there; use a free one, e.g. --port {free_port(address)} "
                "(FRAMEFLEET_FLOWER_PORT)"
            ) from None
