"""`framefleet finetune`: transfer learning on a labelled folder, one ONNX out, registered."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from framefleet.cli.base import (
    HELP_EPILOG,
    LEARN_MODULES,
    _exits,
    holdout_option,
    local_max_items_option,
    main,
    parity_option,
    require_extra,
)
from framefleet.core import defaults
from framefleet.core.settings import Settings

if TYPE_CHECKING:
    from framefleet.learn.publish import Published

FINETUNE_EPILOG = """\b
Examples:
  framefleet finetune --data ./labelled/ --base mobilenet-v2 --out ./shapes-model \\
      --name shapes --models-file ./my-models.toml        # small set: in-process
  framefleet --models-file my-models.toml finetune --data s3://photos/labelled/ \\
      --out ./cats --name cats --fleet                    # features on the workers
  framefleet --models-file my-models.toml finetune --data ./labelled/ --out ./deep \\
      --name shapes-deep --method deep --unfreeze 2       # needs the train extra (PyTorch)
  framefleet --models-file my-models.toml worker --models shapes   # then serve it
""" + HELP_EPILOG.split("\b", 2)[2]


@main.command(epilog=FINETUNE_EPILOG)
@click.option("--data", "data_uri", required=True, help="ImageFolder: one sub-folder per class.")
@click.option("--base", default="mobilenet-v2", show_default=True, help="Registry base model.")
@click.option(
    "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output folder."
)
@click.option(
    "--name",
    help="Register the model under this name (in --models-file, else models.toml in the model "
    "directory, which every command reads).",
)
@click.option(
    "--method",
    type=click.Choice(["head", "deep"]),
    default="head",
    show_default=True,
    help="head: a new head on frozen embeddings; deep: also retrain the last blocks (PyTorch).",
)
@click.option(
    "--unfreeze",
    type=click.IntRange(1, 4),
    default=2,
    show_default=True,
    help="deep: how many of the last blocks to retrain (Conv_1, expanded_conv_16, ...).",
)
@click.option(
    "--head",
    "head_kind",
    type=click.Choice(["linear", "mlp"]),
    default="linear",
    show_default=True,
    help="Head of the head method: logistic regression or a one-hidden-layer MLP.",
)
@click.option(
    "--epochs",
    type=click.IntRange(1, 10_000),
    envvar="FRAMEFLEET_EPOCHS",
    show_envvar=True,
    help=f"Epochs (default: {defaults.HEAD_EPOCHS} head, {defaults.DEEP_EPOCHS} deep).",
)
@click.option(
    "--fleet/--local",
    default=None,
    help="Embed on the workers (a job) or in-process (default: by size, see --local-max-items).",
)
@click.option("--work", "work_uri", help="Output URI of the feature job (default: OUT/features).")
@holdout_option
@parity_option
@local_max_items_option
@click.pass_obj
@_exits
def finetune(
    settings: Settings,
    data_uri: str,
    base: str,
    out_dir: Path,
    name: str | None,
    method: str,
    unfreeze: int,
    head_kind: str,
    epochs: int | None,
    fleet: bool | None,
    work_uri: str | None,
    holdout: float | None,
    parity_atol: float | None,
    local_max_items: int | None,
) -> None:
    """Fine-tune BASE on your labelled images; export one ONNX that cv2.dnn serves.

    Writes OUT/model.onnx (only if it matches the training side through cv2.dnn within
    --parity-atol), labels.txt, training_curve.png and metrics.json; with --name, copies the
    model under the model directory and adds it to --models-file (else to models.toml there), so
    workers serve it by name.
    """
    settings = settings.with_(
        holdout=holdout, parity_atol=parity_atol, local_max_items=local_max_items
    )
    if method == "deep":
        require_extra("finetune --method deep", "train", {**LEARN_MODULES, "torch": "torch"})
    else:
        require_extra("finetune", "learn", LEARN_MODULES)
    require_registry(settings, name)

    def echo(message: str) -> None:
        click.echo(message, err=True)

    if method == "deep":
        from framefleet.learn.deep import finetune_deep

        deep = finetune_deep(
            settings,
            data_uri,
            base,
            out_dir,
            name=name,
            unfreeze=unfreeze,
            epochs=epochs or defaults.DEEP_EPOCHS,
            echo=echo,
        )
        report(deep.published, deep.holdout_accuracy, deep.baseline_accuracy)
        return
    from framefleet.learn.finetune import finetune as run

    result = run(
        settings,
        data_uri,
        base,
        out_dir,
        name=name,
        head="mlp" if head_kind == "mlp" else "linear",
        epochs=epochs or defaults.HEAD_EPOCHS,
        fleet=fleet,
        work_uri=work_uri,
        echo=echo,
    )
    report(result.published, result.holdout_accuracy, result.baseline_accuracy)


def require_registry(settings: Settings, name: str | None) -> None:
    """--name copies the model into the model directory: refuse a read-only one before any work
    (issue 30, item 3), not after the last epoch."""
    import os

    from framefleet.core.errors import ConfigError

    if not name:
        return
    folder = settings.model_dir
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the nearest folder that exists must take the new one
    if not os.access(folder, os.W_OK):
        raise ConfigError(
            f"--name copies the model into the model directory {settings.model_dir}, which is "
            "read-only; give --model-dir (FRAMEFLEET_MODEL_DIR) a folder of your own holding the "
            f'base model, e.g. mkdir -p models && cp -rs "$(realpath {settings.model_dir})/." '
            "models/ && framefleet --model-dir models finetune ..."
        )


def report(published: Published, accuracy: float, baseline: float | None) -> None:
    """What finetune and train print at the end."""
    versus = "" if baseline is None else f" (baseline {baseline:.3f})"
    click.echo(f"model      {published.model_path}")
    click.echo(f"accuracy   {accuracy:.3f} held-out{versus}")
    click.echo(
        f"parity     max |dp| {published.parity.max_abs_diff:.2g} on "
        f"{published.parity.items} held-out images (tolerance {published.parity.atol:g})"
    )
    if published.registered:
        registered = published.registered
        click.echo(
            f"registered {registered.name} in {registered.registry_file}; serve it: framefleet "
            f"--models-file {registered.registry_file} worker --models {registered.name}"
        )
