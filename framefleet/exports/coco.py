"""COCO: a dataset (``annotations/instances_default.json``: images, annotations, categories, the
layout CVAT's "COCO 1.0" and Datumaro's ``coco_instances`` import) and detection results
(``results.json``: one ``{image_id, category_id, bbox, score}`` per box), as pycocotools'
``COCO`` and ``COCO.loadRes`` read them.

Written by hand: the format is a small JSON document, and pycocotools (in the ``learn`` extra)
only reads it. Category ids are the model's class ids plus one (COCO's ids start at 1); boxes are
``[x, y, width, height]`` in pixels; ``file_name`` is the item's key under the input root.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from framefleet.exports.coords import coco_xywh
from framefleet.exports.selection import Selection


def write(selection: Selection, out: Path) -> list[Path]:
    """Write ``annotations/instances_default.json`` and ``results.json`` under ``out``; return
    their paths."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for image_id, image in enumerate(selection, start=1):
        images.append(
            {
                "id": image_id,
                "file_name": image.item,
                "width": image.width,
                "height": image.height,
                "coco_url": image.source,
            }
        )
        for box in image.boxes:
            bbox = coco_xywh(box.x1, box.y1, box.x2, box.y2)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": box.class_id + 1,
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                    "segmentation": [],
                    "score": box.score,
                }
            )
            results.append(
                {
                    "image_id": image_id,
                    "category_id": box.class_id + 1,
                    "bbox": bbox,
                    "score": box.score,
                }
            )
    categories = [{"id": c + 1, "name": name} for c, name in selection.classes.items()]
    dataset = {
        "info": {"description": "framefleet predictions"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    # Where COCO's layout keeps the images (``file_name`` is relative to it); importers such as
    # Datumaro's look for the folder even when the images stay in the bucket.
    (out / "images" / "default").mkdir(parents=True, exist_ok=True)
    written = [out / "annotations" / "instances_default.json", out / "results.json"]
    written[0].write_text(json.dumps(dataset))
    written[1].write_text(json.dumps(results))
    return written
