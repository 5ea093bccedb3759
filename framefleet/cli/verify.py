"""`framefleet models verify`: do both engines give the same answers on sample images?"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from framefleet.cli.base import EXIT_DISAGREE, EXIT_OK, HELP_EPILOG, _exits
from framefleet.cli.models import models_group
from framefleet.core.settings import Settings


@models_group.command(name="verify", epilog=HELP_EPILOG)
@click.argument("names", nargs=-1, metavar="[MODEL]...")
@click.option(
    "--images",
    "images_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of sample images (default: the shared sample images).",
)
@click.pass_obj
@_exits
def verify(settings: Settings, names: tuple[str, ...], images_dir: Path | None) -> None:
    """Run each MODEL (default: every model whose files are in the model directory) on cv2.dnn
    and on onnxruntime over sample images; print, per model, the largest difference of the raw
    outputs and how the detections compare. Exits 8 when they disagree beyond the tolerance."""
    import cv2

    from framefleet.core.errors import ConfigError
    from framefleet.core.modelstore import ModelStore
    from framefleet.inference.engines import ort_version
    from framefleet.inference.parity import Tolerance, compare_engines, sample_images
    from framefleet.samples import shared_dir

    registry = settings.registry()
    store = ModelStore(settings.model_dir, download=bool(names))
    if images_dir is None:
        shared = shared_dir()
        if shared is None:
            raise ConfigError("no sample images: pass --images DIR (or set FRAMEFLEET_SHARED_DIR)")
        images_dir = shared / "media" / "images"
    images = sample_images(images_dir)
    if not images:
        raise ConfigError(f"no images in {images_dir}; pass --images DIR with .jpg/.png files")
    if not names:
        names = tuple(
            n
            for n in registry.names()
            if (settings.model_dir / registry.get(n).files["model"].path).exists()
        )
    tolerance = Tolerance()
    click.echo(
        f"cv2.dnn (OpenCV {cv2.__version__}) vs onnxruntime {ort_version() or '(not installed)'} "
        f"on {len(images)} images from {images_dir}"
    )
    click.echo(f"tolerance: {tolerance.describe()}")
    header = f"{'model':<14}{'raw max|a-b|':>13}{'rel':>10}{'matched':>9}{'one only':>10}"
    click.echo(header + f"{'score diff':>12}{'class diffs':>12}{'min IoU':>9}  verdict")
    failed = []
    for name in names:
        report = compare_engines(registry.get(name), store, images, tolerance)
        t = report.totals()
        verdict = "ok" if report.ok else "DISAGREE"
        if report.raw_only:
            detail = f"{'(decoded inside OpenCV: network only)':>52}"
        else:
            detail = (
                f"{t['matched']:>9.0f}{t['only_a']:>5.0f}/{t['only_b']:<4.0f}"
                f"{t['max_score_diff']:>12.2g}{t['class_diffs']:>12.0f}{t['min_iou']:>9.3f}"
            )
        click.echo(
            f"{name:<14}{report.max_abs_diff:>13.2e}{report.max_rel_diff:>10.1e}{detail}  {verdict}"
        )
        if not report.ok:
            failed.append(report)
    for report in failed:
        problems = report.problems + [p for i in report.images for p in i.problems]
        click.echo(f"\n{report.model}: the engines disagree:", err=True)
        for problem in problems[:10]:
            click.echo(f"  {problem}", err=True)
        if len(problems) > 10:
            click.echo(f"  ... {len(problems) - 10} more", err=True)
    sys.exit(EXIT_DISAGREE if failed else EXIT_OK)
