"""Exports of a job's results tables in the formats labelling and analysis tools read.

One module per format, each with ``write(selection, out, ...)``; `FORMATS` maps ``--format``
names to them. Coordinates are converted in `coords` only.

    >>> with open_results(open_storage("./results")) as results:
    ...     export(results, "coco", Path("./coco"), where="item LIKE 'cam1/%'")
    [PosixPath('coco/annotations/instances_default.json'), PosixPath('coco/results.json')]
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from framefleet.core.errors import ConfigError
from framefleet.dataset import Results
from framefleet.exports import coco, csvfile, cvat, labelstudio, yolo
from framefleet.exports.images import copy_images
from framefleet.exports.selection import Selection, select

Writer = Callable[[Selection, Path, str], list[Path]]

FORMATS: dict[str, Writer] = {
    "coco": lambda selection, out, image_root: coco.write(selection, out),
    "yolo": yolo.write,
    "labelstudio": labelstudio.write,
    "cvat": lambda selection, out, image_root: cvat.write(selection, out),
    "csv": lambda selection, out, image_root: csvfile.write(selection, out),
}
"""``--format`` name -> writer(selection, out folder, image root)."""


def export(
    results: Results,
    fmt: str,
    out: Path,
    where: str = "",
    min_score: float = 0.0,
    image_root: str = "",
    with_images: bool = False,
) -> list[Path]:
    """Write the images ``where`` selects (their boxes of at least ``min_score``) as ``fmt``;
    ``with_images`` copies the images too, where the format's layout keeps them.

    Raises:
        ConfigError: an unknown format, or a ``where`` the tables reject.
        StorageError: ``with_images`` and an image could not be read.
    """
    writer = FORMATS.get(fmt)
    if writer is None:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    selection = select(results, where, min_score)
    if with_images:
        copy_images(selection, fmt, out)
    return writer(selection, out, image_root)


__all__ = ["FORMATS", "Selection", "export", "select"]
