"""`framefleet query` and `framefleet export`: a job's results tables, read where they lie."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from framefleet.cli.base import HELP_EPILOG, _exits, main
from framefleet.core.settings import Settings

if TYPE_CHECKING:
    from framefleet.core.storage import Storage

JOB_HELP = (
    "JOB is a job id (its output root is looked up in Redis) or the output root itself "
    "(a folder or s3://bucket/prefix/), which works after the job's state has expired."
)


def output_root(settings: Settings, job: str) -> Storage:
    """The output root of ``job``: a job id, or the root's URI or folder."""
    from framefleet.core.storage import open_storage

    if "://" in job or os.path.isdir(job):
        return open_storage(job)
    if os.sep in job or job.startswith("."):  # a path, not a job id
        from framefleet.core.errors import ObjectNotFound

        raise ObjectNotFound(
            f"output folder {job} does not exist; give the folder a job wrote to (its --out) "
            "or the job id"
        )
    from framefleet.state.jobs import JobStore

    return open_storage(JobStore.from_url(settings.redis_url).get(job).output_uri)


@main.command(epilog=HELP_EPILOG)
@click.argument("job")
@click.argument("sql")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a table.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per row.")
@click.option("--limit", default=50, show_default=True, help="Rows shown in the table.")
@click.pass_obj
@_exits
def query(settings: Settings, job: str, sql: str, as_csv: bool, as_json: bool, limit: int) -> None:
    """Run SQL (DuckDB) over JOB's results tables, `images` and `detections`.

    \b
    framefleet query JOB "SELECT class_name, count(*) n FROM detections GROUP BY 1 ORDER BY n DESC"
    framefleet query ./results "SELECT item FROM detections WHERE class_name='person' AND score>0.8"

    """
    import duckdb

    from framefleet.core.errors import ConfigError
    from framefleet.dataset import open_results

    with open_results(output_root(settings, job)) as results:
        try:
            cursor = results.sql(sql)
        except duckdb.Error as exc:
            raise ConfigError(f"DuckDB refused the query: {exc}") from exc
        names = [d[0] for d in cursor.description or []]
        rows = cursor.fetchall()
    if as_csv:
        import csv

        out = csv.writer(sys.stdout)
        out.writerow(names)
        out.writerows(rows)
    elif as_json:
        for row in rows:
            click.echo(json.dumps(dict(zip(names, row, strict=True)), default=_json_value))
    else:
        _print_table(names, rows, limit)


def _json_value(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _print_table(names: list[str], rows: list[tuple[Any, ...]], limit: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*names, show_edge=False)
    for row in rows[:limit]:
        table.add_row(
            *("" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v) for v in row)
        )
    console = Console(width=max(100, Console().width))
    console.print(table)
    more = f", {limit} shown (--limit, --csv or --json for all)" if len(rows) > limit else ""
    console.print(f"{len(rows)} row(s){more}", style="dim")


@main.command(epilog=HELP_EPILOG)
@click.argument("job")
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(["coco", "yolo", "labelstudio", "cvat", "csv"]),
    help="coco: annotations/instances_default.json + results.json; yolo: labels/*.txt + "
    "data.yaml; labelstudio: tasks.json with predictions + config.xml; cvat: annotations.xml "
    "(CVAT for images 1.1); csv: images.csv + detections.csv.",
)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--where",
    default="",
    help='SQL condition on the images table, e.g. "item LIKE \'cam1/%\'" or "item IN (SELECT '
    "item FROM detections WHERE class_name = 'person')\".",
)
@click.option("--min-score", default=0.0, show_default=True, help="Leave out boxes below it.")
@click.option(
    "--image-root",
    default="",
    help="Where the tool finds the images (a folder, or Label Studio's URL prefix), joined "
    "with each key; default: each image's source URI.",
)
@click.option(
    "--with-images",
    is_flag=True,
    help="Copy the images into the export too (coco, cvat, yolo), for tools that import a "
    "folder (CVAT, Datumaro).",
)
@click.pass_obj
@_exits
def export(
    settings: Settings,
    job: str,
    fmt: str,
    out_dir: Path,
    where: str,
    min_score: float,
    image_root: str,
    with_images: bool,
) -> None:
    """Export JOB's succeeded images and their boxes for labelling and analysis tools.

    \b
    framefleet export JOB --format coco --out ./coco
    framefleet export JOB --format labelstudio --out ./ls --where "item LIKE 'cam1/%'"

    """
    from framefleet.dataset import open_results
    from framefleet.exports import export as write

    with open_results(output_root(settings, job)) as results:
        written = write(results, fmt, out_dir, where, min_score, image_root, with_images)
    for path in written[-4:]:
        click.echo(path)
    if len(written) > 4:
        click.echo(f"... {len(written)} files in {out_dir}", err=True)
