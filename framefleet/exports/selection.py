"""What an export writes: the succeeded images a ``--where`` condition selects, their boxes, and
the classes, read from a job's results tables."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import duckdb

from framefleet.core.errors import ConfigError
from framefleet.dataset import Results


@dataclass(frozen=True)
class Box:
    """One detection row: class, score and pixel box."""

    class_id: int
    class_name: str
    score: float
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class ImageRows:
    """One selected image and its boxes (in rank order)."""

    item: str
    source: str
    width: int
    height: int
    model: str
    model_sha256: str
    task: str
    boxes: list[Box] = field(default_factory=list)


@dataclass(frozen=True)
class Selection:
    """The images of an export, and every class that appears in them (id -> name)."""

    images: list[ImageRows]
    classes: dict[int, str]

    def __iter__(self) -> Iterator[ImageRows]:
        return iter(self.images)


def select(results: Results, where: str = "", min_score: float = 0.0) -> Selection:
    """The succeeded still images (not videos) of ``results`` that ``where`` accepts, with their
    boxes of at least ``min_score``.

    Args:
        where: a SQL condition on the ``images`` table (it may use a subquery on
            ``detections``), e.g. ``item LIKE 'cam1/%'`` or
            ``item IN (SELECT item FROM detections WHERE class_name = 'person')``.
        min_score: boxes below this score are left out.

    Raises:
        ConfigError: ``where`` is not a valid condition on the tables.
    """
    condition = f"AND ({where})" if where.strip() else ""
    try:
        rows = results.sql(
            f"""SELECT item, source, width, height, model, model_sha256, task FROM images
            WHERE status = 'done' AND kind = 'image' {condition} ORDER BY item"""
        ).fetchall()
        boxes = results.sql(
            f"""SELECT d.item, d.class_id, coalesce(d.class_name, 'class_' || d.class_id),
                d.score, d.x1, d.y1, d.x2, d.y2
            FROM detections d JOIN (
                SELECT item FROM images WHERE status = 'done' AND kind = 'image' {condition}
            ) USING (item)
            WHERE d.score >= ? ORDER BY d.item, d.rank""",
            [min_score],
        ).fetchall()
    except duckdb.Error as exc:
        raise ConfigError(
            f"--where {where!r} is not a condition DuckDB accepts on the images table: {exc}"
        ) from exc
    by_item: dict[str, list[Box]] = {}
    classes: dict[int, str] = {}
    for item, class_id, name, score, *xyxy in boxes:
        by_item.setdefault(item, []).append(Box(class_id, name, score, *xyxy))
        classes.setdefault(class_id, name)
    images = [
        ImageRows(
            item, source or "", width, height, model, sha or "", task or "", by_item.get(item, [])
        )
        for item, source, width, height, model, sha, task in rows
    ]
    return Selection(images, dict(sorted(classes.items())))
