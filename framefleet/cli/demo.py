"""`framefleet demo`: the whole stack locally on sample media."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from framefleet.cli.base import HELP_EPILOG, _exits, main
from framefleet.core.settings import Settings


@main.command(epilog=HELP_EPILOG)
@click.option("--keep", is_flag=True, help="Leave Redis, S3, workers and Flower running.")
@click.option("--workdir", type=click.Path(path_type=Path), help="Where services keep data.")
@click.option(
    "--media-dir",
    type=click.Path(path_type=Path),
    envvar="FRAMEFLEET_MEDIA_DIR",
    show_envvar=True,
    help="Sample media to submit (default: ../shared/media).",
)
@click.option("--workers", "n_workers", type=click.IntRange(1, 16), default=2, show_default=True)
@click.option("--model", default=None, help="Registry model name.")
@click.option("--all-media", is_flag=True, help="Also submit the long sample videos.")
@click.pass_obj
@_exits
def demo(
    settings: Settings,
    keep: bool,
    workdir: Path | None,
    media_dir: Path | None,
    n_workers: int,
    model: str | None,
    all_media: bool,
) -> None:
    """The whole stack locally: Redis, S3 (SeaweedFS), workers, Flower, sample media, a job."""
    from framefleet.demo import run_demo

    sys.exit(
        run_demo(
            settings,
            keep=keep,
            workdir=workdir,
            media_dir=media_dir,
            n_workers=n_workers,
            model=model,
            all_media=all_media,
        )
    )
