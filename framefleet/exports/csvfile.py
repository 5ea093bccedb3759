"""CSV: one row per box of the selected images (``detections.csv``), with each image's size and
source, and one row per image (``images.csv``); written with pyarrow's CSV writer."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from framefleet.exports.selection import Selection


def write(selection: Selection, out: Path) -> list[Path]:
    """Write ``images.csv`` and ``detections.csv`` under ``out``; return their paths."""
    images = pa.Table.from_pylist(
        [
            {
                "item": i.item,
                "source": i.source,
                "width": i.width,
                "height": i.height,
                "model": i.model,
                "detections": len(i.boxes),
            }
            for i in selection
        ]
    )
    boxes = pa.Table.from_pylist(
        [
            {
                "item": i.item,
                "width": i.width,
                "height": i.height,
                "class_id": b.class_id,
                "class_name": b.class_name,
                "score": b.score,
                "x1": b.x1,
                "y1": b.y1,
                "x2": b.x2,
                "y2": b.y2,
            }
            for i in selection
            for b in i.boxes
        ]
    )
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "images.csv", out / "detections.csv"]
    pacsv.write_csv(images, written[0])
    pacsv.write_csv(boxes, written[1])
    return written
