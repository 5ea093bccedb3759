"""`framefleet train`: a small CNN from scratch on a labelled folder, exported, registered."""

from __future__ import annotations

from pathlib import Path

import click

from framefleet.cli.base import HELP_EPILOG, _exits, holdout_option, main, parity_option
from framefleet.core import defaults
from framefleet.core.settings import Settings

TRAIN_EPILOG = """\b
Examples:
  framefleet --models-file my-models.toml train --data ./digits/ --out ./digits-cnn --name digits
  framefleet --models-file my-models.toml worker --models digits          # serve it
  framefleet --models-file my-models.toml evaluate --model digits --data ./digits/ --out ./ev
""" + HELP_EPILOG.split("\b", 2)[2]


@main.command(epilog=TRAIN_EPILOG)
@click.option("--data", "data_uri", required=True, help="ImageFolder: one sub-folder per class.")
@click.option(
    "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output folder."
)
@click.option(
    "--name",
    help="Register the model under this name (in --models-file, else MODEL_DIR/models.toml).",
)
@click.option(
    "--epochs",
    type=click.IntRange(1, 10_000),
    default=defaults.CNN_EPOCHS,
    show_default=True,
    envvar="FRAMEFLEET_EPOCHS",
    show_envvar=True,
)
@holdout_option
@parity_option
@click.pass_obj
@_exits
def train(
    settings: Settings,
    data_uri: str,
    out_dir: Path,
    name: str | None,
    epochs: int,
    holdout: float | None,
    parity_atol: float | None,
) -> None:
    """Train a small CNN (Conv2D, MaxPooling2D, Flatten, Dense) from scratch with PyTorch; export
    ONNX, check it through cv2.dnn, register it. Needs the train extra (PyTorch)."""
    from framefleet.cli.base import LEARN_MODULES, require_extra
    from framefleet.cli.finetune import report, require_registry

    require_extra("train", "train", {**LEARN_MODULES, "torch": "torch"})
    from framefleet.learn.train import train as run

    settings = settings.with_(holdout=holdout, parity_atol=parity_atol)
    require_registry(settings, name)
    result = run(
        settings,
        data_uri,
        out_dir,
        name=name,
        epochs=epochs,
        echo=lambda m: click.echo(m, err=True),
    )
    report(result.published, result.holdout_accuracy, None)
