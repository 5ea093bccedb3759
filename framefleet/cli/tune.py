"""`framefleet tune`: measure which settings run a model fastest here, on a sample of the input."""

from __future__ import annotations

import time
from pathlib import Path

import click

from framefleet.cli.base import HELP_EPILOG, _exits, main, model_option
from framefleet.core.settings import Settings

TUNE_EPILOG = """\b
Examples:
  framefleet tune --model yolox-nano ../shared/media/images
  framefleet tune --model yolox-nano s3://photos/2026/ --write tuned.env
  set -a; . ./tuned.env; set +a      # then framefleet worker / framefleet submit use them
"""


@main.command(epilog=TUNE_EPILOG + "\n" + HELP_EPILOG)
@click.argument("input_uri")
@model_option
@click.option(
    "--sample",
    type=click.IntRange(2, 1000),
    default=24,
    show_default=True,
    help="Images of INPUT_URI to measure on (cycled if there are fewer).",
)
@click.option(
    "--budget",
    "budget_s",
    type=click.FloatRange(5, 600),
    default=60,
    show_default=True,
    help="Seconds to spend; layouts not started by then are skipped.",
)
@click.option(
    "--write",
    "write_to",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the fastest settings to this file as FRAMEFLEET_* variables.",
)
@click.pass_obj
@_exits
def tune(
    settings: Settings,
    input_uri: str,
    model: str | None,
    sample: int,
    budget_s: float,
    write_to: Path | None,
) -> None:
    """Try engine, forward batch, items per message and processes x threads for a model on a
    sample of INPUT_URI (a folder or s3:// prefix); print what each measured and recommend the
    fastest (or --write it)."""
    from framefleet.inference.tune import Trial
    from framefleet.inference.tune import tune as measure

    name = model or settings.registry().default
    click.echo(
        f"{'engine':<12}{'procs x threads':>16}{'fwd batch':>10}{'items/msg':>10}{'images/s':>10}"
    )

    def show(trial: Trial) -> None:
        layout = f"{trial.processes} x {trial.threads}"
        click.echo(
            f"{trial.engine:<12}{layout:>16}{trial.forward_batch:>10}"
            f"{trial.items_per_message:>10}{trial.rate:>10.1f}"
        )

    result = measure(
        name,
        input_uri,
        model_dir=settings.model_dir,
        models_file=settings.registry_file(),
        sample=sample,
        budget_s=budget_s,
        on_trial=show,
    )
    for skipped in result.skipped:
        click.echo(f"skipped: {skipped}")
    best = result.best
    env = best.env()
    click.echo(
        f"\nfastest on {result.sample} images of {input_uri}: {best.rate:.1f} images/s with\n  "
        + " ".join(f"{k}={v}" for k, v in env.items())
    )
    if write_to is not None:
        lines = [
            f"# framefleet tune --model {name} {input_uri}, {time.strftime('%Y-%m-%d %H:%M')}: "
            f"{best.rate:.1f} images/s on {result.sample} images",
            "# use: set -a; . THIS_FILE; set +a   (then framefleet worker, framefleet submit)",
            f"FRAMEFLEET_MODEL={name}",
            *(f"{k}={v}" for k, v in env.items()),
        ]
        write_to.write_text("\n".join(lines) + "\n")
        click.echo(f"wrote {write_to}")
