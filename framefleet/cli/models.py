"""`framefleet models`: the registry."""

from __future__ import annotations

import click

from framefleet.cli.base import HELP_EPILOG, _exits, main
from framefleet.core.settings import Settings


@main.group(name="models", epilog=HELP_EPILOG, invoke_without_command=True)
@click.pass_context
@_exits
def models_group(ctx: click.Context) -> None:
    """The model registry: name, task and description of each model (``models verify``: check
    that both engines give the same answers)."""
    if ctx.invoked_subcommand is not None:
        return
    settings: Settings = ctx.obj
    registry = settings.registry()
    for name in registry.names():
        spec = registry.get(name)
        mark = "*" if name == registry.default else " "
        click.echo(f"{mark} {name:<14} {spec.task:<15} {spec.description}")
