"""`framefleet evaluate`: score a model, or a finished job's outputs, against labelled data."""

from __future__ import annotations

import json
from pathlib import Path

import click

from framefleet.cli.base import HELP_EPILOG, _exits, local_max_items_option, main, model_option
from framefleet.core.settings import Settings

EVALUATE_EPILOG = """\b
Examples:
  framefleet --models-file my-models.toml evaluate --model shapes --data ./labelled/ --out ev
  framefleet evaluate --model yolox-nano --data ./photos/ --truth instances.json --out ev
  framefleet evaluate --job 20261125-031500-a1b2c3 --truth instances.json --out ev
  framefleet evaluate --results s3://out/run1/ --data s3://photos/ --truth gt.json --out ev
""" + HELP_EPILOG.split("\b", 2)[2]


@main.command(epilog=EVALUATE_EPILOG)
@model_option
@click.option("--data", "data_uri", help="Images: an ImageFolder, or the folder --truth names.")
@click.option(
    "--truth",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="COCO detection ground truth (JSON); without it, --data's folder names are the truth.",
)
@click.option("--job", "job_id", help="Score this finished job's outputs (no rerun).")
@click.option("--results", "results_uri", help="Score result documents under this output root.")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where metrics.json and the plots go.",
)
@click.option(
    "--fleet/--local",
    default=None,
    help="Run the model on the workers (a job) or in-process (default: by size).",
)
@local_max_items_option
@click.pass_obj
@_exits
def evaluate(
    settings: Settings,
    model: str | None,
    data_uri: str | None,
    truth: Path | None,
    job_id: str | None,
    results_uri: str | None,
    out_dir: Path,
    fleet: bool | None,
    local_max_items: int | None,
) -> None:
    """Score MODEL (or a finished job's outputs) on labelled data: accuracy, per-class
    precision/recall/F1 and a confusion matrix for classification; COCO mAP (pycocotools) for
    detection. Writes metrics.json, confusion_matrix.png and pr_curves.png to --out."""
    from framefleet.cli.base import LEARN_MODULES, require_extra
    from framefleet.core.errors import ConfigError

    require_extra("evaluate", "learn", LEARN_MODULES)
    from framefleet.learn.evaluate import Source, evaluate, from_job

    settings = settings.with_(local_max_items=local_max_items)
    if sum(x is not None for x in (model, job_id, results_uri)) != 1:
        raise ConfigError("give exactly one of --model (run it), --job or --results (score them)")
    if job_id is not None:
        source, input_uri = from_job(settings, job_id)
        data_uri = data_uri or input_uri
    else:
        source = Source(model=model, results_uri=results_uri, fleet=fleet)
    if data_uri is None:
        raise ConfigError("--data is required (the labelled images, or those --truth lists)")
    metrics = evaluate(
        settings, source, data_uri, out_dir, truth, echo=lambda m: click.echo(m, err=True)
    )
    if metrics["task"] == "classification":
        click.echo(f"accuracy  {metrics['accuracy']:.4f} on {metrics['items']} images")
        for name, row in metrics["per_class"].items():
            click.echo(
                f"  {name:<20} P {row['precision']:.3f}  R {row['recall']:.3f}  "
                f"F1 {row['f1']:.3f}  n {row['support']}"
            )
    else:
        click.echo(
            f"mAP {metrics['mAP']:.4f}  mAP@.5 {metrics['mAP_50']:.4f}  "
            f"small {metrics['mAP_small']:.4f} medium {metrics['mAP_medium']:.4f} "
            f"large {metrics['mAP_large']:.4f}"
        )
        for name, row in metrics["per_class"].items():
            if row["AP"] is not None:
                click.echo(f"  {name:<20} AP {row['AP']:.4f}  AP@.5 {row['AP_50']:.4f}")
    click.echo(f"wrote {out_dir / 'metrics.json'}")
    if metrics["missing_predictions"]:
        click.echo(
            f"{len(metrics['missing_predictions'])} images had no prediction (failed items): "
            + json.dumps(metrics["missing_predictions"][:5]),
            err=True,
        )
