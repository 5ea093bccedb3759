"""`framefleet exporter` and `framefleet healthcheck`: what a deployment runs beside the fleet."""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request

import click

from framefleet.cli.base import (
    EXIT_UNHEALTHY,
    HELP_EPILOG,
    _exits,
    main,
    metrics_port_option,
    setting_option,
)
from framefleet.core.settings import Settings


@main.command(epilog=HELP_EPILOG)
@setting_option(
    "--port", setting="exporter_port", type=click.IntRange(1, 65535), help="Port of /metrics."
)
@click.option("--address", default="0.0.0.0", show_default=True)
@click.option("--once", is_flag=True, help="Print the metrics once on stdout and exit.")
@click.pass_obj
@_exits
def exporter(settings: Settings, port: int | None, address: str, once: bool) -> None:
    """Prometheus metrics read from Redis: queue length per model, open jobs' progress."""
    from prometheus_client import CollectorRegistry, generate_latest, start_http_server

    from framefleet.state.jobs import JobStore
    from producer.exporter import FleetCollector

    registry = CollectorRegistry()
    collector = FleetCollector(JobStore.from_url(settings.redis_url), settings.registry().names())
    registry.register(collector)
    if once:
        sys.stdout.write(generate_latest(registry).decode())
        return
    port = port or settings.exporter_port
    start_http_server(port, addr=address, registry=registry)
    click.echo(f"framefleet exporter on http://{address}:{port}/metrics", err=True)
    while True:
        time.sleep(3600)


@main.command(epilog=HELP_EPILOG)
@metrics_port_option("Also check that this process's metrics endpoint on localhost answers.")
@click.pass_obj
@_exits
def healthcheck(settings: Settings, metrics_port: int | None) -> None:
    """Exit 0 if Redis answers (and the local metrics endpoint, when a port is set)."""
    from framefleet.state.jobs import JobStore

    JobStore.from_url(settings.redis_url)  # PINGs; BrokerError -> exit 5
    if metrics_port:
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                response.read(1)
        except (urllib.error.URLError, OSError) as exc:
            click.echo(f"framefleet: metrics endpoint {url} does not answer: {exc}", err=True)
            sys.exit(EXIT_UNHEALTHY)
    click.echo("ok")
