"""`framefleet run`: a model over a file or a small folder in this process, no Redis needed."""

from __future__ import annotations

import sys
import time

import click

from framefleet.cli.base import (
    EXIT_ITEMS_FAILED,
    EXIT_OK,
    HELP_EPILOG,
    _exits,
    engine_option,
    main,
    max_pixels_option,
    model_option,
)
from framefleet.core.settings import Settings

RUN_EPILOG = """\b
Examples:
  framefleet run ../shared/media/images --out ./results               # the default model
  framefleet run photo.jpg --out ./results --model yunet
  framefleet run ./photos --out ./results --processes 2
\b
For a bucket or anything that takes more than a few minutes, use the fleet instead
(framefleet worker + framefleet submit): it spreads items over machines, survives crashes and
restarts, and shows progress in status and Flower.
"""


@main.command(epilog=RUN_EPILOG + "\n" + HELP_EPILOG)
@click.argument("input_uri")
@click.option(
    "--out", "output_uri", required=True, help="Output folder or s3:// prefix, as for submit."
)
@model_option
@engine_option("Engine that runs the model (default: its registry entry's, else cv2.dnn).")
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Local processes sharing the items.",
)
@max_pixels_option
@click.option("--quiet", is_flag=True, help="Print only the summary line.")
@click.pass_obj
@_exits
def run(
    settings: Settings,
    input_uri: str,
    output_uri: str,
    model: str | None,
    engine: str | None,
    processes: int,
    max_pixels: int | None,
    quiet: bool,
) -> None:
    """Run a model over INPUT_URI (a file, folder or s3:// prefix) here, with no fleet.

    Writes the same annotated outputs, result documents and results tables a fleet job writes.
    Use it to try a model or debug one image; use `submit` for whole buckets.
    """
    from framefleet.core.storage import open_storage
    from framefleet.core.tables import Rows
    from framefleet.dataset import compact, part_name, write_part
    from framefleet.inference.pipeline import ItemResult
    from framefleet.inference.runner import RUN_JOB_ID, ModelRef, run_local

    results: list[ItemResult] = []

    def show(result: ItemResult) -> None:
        results.append(result)
        if result.ok and not quiet:
            found = ", ".join(f"{n} {name}" for name, n in sorted(result.classes.items()))
            click.echo(f"ok      {result.item}  {found or 'nothing found'}")
        elif not result.ok:
            click.echo(f"FAILED  {result.item}: {result.error}: {result.message}", err=True)

    ref = ModelRef(
        name=model,
        model_dir=settings.model_dir,
        models_file=settings.registry_file(),
        engine=engine or "",
    )
    start = time.perf_counter()
    summary = run_local(
        input_uri,
        output_uri,
        ref,
        processes=processes,
        on_result=show,
        max_pixels=max_pixels or settings.max_pixels,
    )
    # The results tables, as a fleet job's: one part of this run's items, then compacted.
    dst = open_storage(output_uri)
    rows = Rows(part_name(RUN_JOB_ID, "run", [r.item for r in results]), RUN_JOB_ID)
    for result in results:
        result.add_rows(rows, dst.read_bytes)
    write_part(dst, rows)
    compact(dst)
    elapsed = time.perf_counter() - start
    click.echo(
        f"{summary.done} done, {summary.failed} failed, {summary.frames} images/frames in "
        f"{elapsed:.1f} s; outputs under {output_uri}",
        err=True,
    )
    sys.exit(EXIT_ITEMS_FAILED if summary.failed else EXIT_OK)
