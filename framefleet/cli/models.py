"""`framefleet models`: the registry."""

from __future__ import annotations

import click

from framefleet.cli.base import HELP_EPILOG, _exits, main
from framefleet.core.settings import Settings


@main.command(name="models", epilog=HELP_EPILOG)
@click.pass_obj
@_exits
def list_models(settings: Settings) -> None:
    """The model registry: name, task and description of each model."""
    registry = settings.registry()
    for name in registry.names():
        spec = registry.get(name)
        mark = "*" if name == registry.default else " "
        click.echo(f"{mark} {name:<14} {spec.task:<15} {spec.description}")
