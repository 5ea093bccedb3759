"""Label Studio: ``tasks.json``, tasks whose ``predictions`` import as pre-annotations, and the
``config.xml`` labelling interface they fit (boxes as ``RectangleLabels``; a classifier's top-1
class as ``Choices``).

Written by hand: Label Studio's import format is JSON; the tests validate every prediction with
the Label Studio SDK's own `LabelInterface.validate_prediction` against ``config.xml``. Boxes are
percent of the image (``x``, ``y``, ``width``, ``height``) with the image's original size.
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from framefleet.exports.coords import percent_xywh
from framefleet.exports.selection import ImageRows, Selection

FROM_NAME = "label"
TO_NAME = "image"


def write(selection: Selection, out: Path, image_root: str = "") -> list[Path]:
    """Write ``tasks.json`` and ``config.xml`` under ``out``; return their paths.

    ``image_root``: URL prefix Label Studio loads the images from (e.g. its local-files URL,
    ``/data/local-files/?d=photos``), joined with each key; default: each image's source URI.
    """
    classify = any(image.task == "classification" for image in selection)
    tasks = [_task(image, image_root, classify) for image in selection]
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "tasks.json", out / "config.xml"]
    written[0].write_text(json.dumps(tasks))
    written[1].write_text(config(selection.classes.values(), classify))
    return written


def config(names: Any, classify: bool = False) -> str:
    """The labelling interface: an image and the classes as rectangles (or choices)."""
    if classify:
        choices = "".join(f"<Choice value={quoteattr(n)}/>" for n in names)
        control = f'<Choices name="{FROM_NAME}" toName="{TO_NAME}">{choices}</Choices>'
    else:
        labels = "".join(f"<Label value={quoteattr(n)}/>" for n in names)
        control = (
            f'<RectangleLabels name="{FROM_NAME}" toName="{TO_NAME}">{labels}</RectangleLabels>'
        )
    return f'<View><Image name="{TO_NAME}" value="$image"/>{control}</View>\n'


def _task(image: ImageRows, image_root: str, classify: bool) -> dict[str, Any]:
    url = posixpath.join(image_root, image.item) if image_root else image.source
    if classify:
        top = image.boxes[:1]
        result = [
            {
                "id": f"r{i}",
                "from_name": FROM_NAME,
                "to_name": TO_NAME,
                "type": "choices",
                "value": {"choices": [box.class_name]},
                "score": box.score,
            }
            for i, box in enumerate(top)
        ]
    else:
        result = [
            {
                "id": f"r{i}",
                "from_name": FROM_NAME,
                "to_name": TO_NAME,
                "type": "rectanglelabels",
                "original_width": image.width,
                "original_height": image.height,
                "image_rotation": 0,
                "value": {
                    **percent_xywh(box.x1, box.y1, box.x2, box.y2, image.width, image.height),
                    "rotation": 0,
                    "rectanglelabels": [box.class_name],
                },
                "score": box.score,
            }
            for i, box in enumerate(image.boxes)
        ]
    scores = [float(box.score) for box in (image.boxes[:1] if classify else image.boxes)]
    version = f"{image.model}@{image.model_sha256[:12]}" if image.model_sha256 else image.model
    return {
        "data": {"image": url, "item": image.item},
        "predictions": [
            {
                "model_version": version,
                "score": sum(scores) / len(scores) if scores else 0.0,
                "result": result,
            }
        ],
    }
