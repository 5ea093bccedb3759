"""`framefleet models`: the registry, and whether each model's files are here and verified."""

from __future__ import annotations

import click

from framefleet.cli.base import HELP_EPILOG, _exits, main
from framefleet.core.errors import ChecksumMismatch, ModelError
from framefleet.core.modelstore import ModelStore
from framefleet.core.registry import ModelSpec
from framefleet.core.settings import Settings


def files_state(store: ModelStore, spec: ModelSpec) -> str:
    """The state of every file of ``spec`` in ``store`` (verified, present but not pinned,
    missing, bad sha256), without downloading anything."""
    specs = [*spec.files.values(), *([spec.labels] if spec.labels else [])]
    missing = [f for f in specs if not (store.model_dir / f.path).is_file()]
    if missing:
        how = "downloads on first use" if all(f.url for f in missing) else "no URL: copy it there"
        return f"missing {missing[0].path} ({how})"
    try:
        for f in specs:
            store.digest(f)
    except ChecksumMismatch:
        return "bad sha256"
    except ModelError:
        return "unreadable"
    return "verified" if all(f.sha256 for f in specs) else "present, not pinned"


@main.group(name="models", epilog=HELP_EPILOG, invoke_without_command=True)
@click.pass_context
@_exits
def models_group(ctx: click.Context) -> None:
    """The model registry: name, task, whether its files are present and verified (sha256), and
    a description; * marks the default model (``models verify``: check that both engines give
    the same answers)."""
    if ctx.invoked_subcommand is not None:
        return
    settings: Settings = ctx.obj
    registry = settings.registry()
    store = ModelStore(settings.model_dir, download=False)
    click.echo(f"model files in {settings.model_dir} (--model-dir / FRAMEFLEET_MODEL_DIR)")
    if not settings.model_dir.is_dir():
        click.echo(
            f"warning: the model folder {settings.model_dir} does not exist; if your model files "
            "are elsewhere, give that folder with --model-dir or FRAMEFLEET_MODEL_DIR (models "
            "with a URL download into this one on first use)",
            err=True,
        )
    rows = [("", "NAME", "TASK", "FILES", "DESCRIPTION")]
    for name in registry.names():
        spec = registry.get(name)
        mark = "*" if name == registry.default else " "
        rows.append((mark, name, spec.task, files_state(store, spec), spec.description))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        click.echo(" ".join([*cells, row[-1]]).rstrip())
