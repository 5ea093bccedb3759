"""Exports of a job's results tables in the formats labelling and analysis tools read.

One module per format, each with ``write(selection, out, ...)``; `FORMATS` maps ``--format``
names to them. Coordinates are converted in `coords` only.

    >>> with open_results(open_storage("./results")) as results:
    ...     export(results, "coco", Path("./coco"), where="item LIKE 'cam1/%'")
    [PosixPath('coco/annotations.json'), PosixPath('coco/results.json')]
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from framefleet.core.errors import ConfigError
from framefleet.dataset import Results
from framefleet.exports import coco, csvfile, labelstudio, yolo
from framefleet.exports.selection import Selection, select

Writer = Callable[[Selection, Path, str], list[Path]]

FORMATS: dict[str, Writer] = {
    "coco": lambda selection, out, image_root: coco.write(selection, out),
    "yolo": yolo.write,
    "labelstudio": labelstudio.write,
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
) -> list[Path]:
    """Write the images ``where`` selects (their boxes of at least ``min_score``) as ``fmt``.

    Raises:
        ConfigError: an unknown format, or a ``where`` the tables reject.
    """
    writer = FORMATS.get(fmt)
    if writer is None:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return writer(select(results, where, min_score), out, image_root)


__all__ = ["FORMATS", "Selection", "export", "select"]
