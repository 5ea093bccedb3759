"""YOLO: one ``labels/<item>.txt`` per image (``class cx cy w h``, normalised, one box a line),
``images.txt`` listing the images, and a ``data.yaml`` with the class names, as Ultralytics
trains from. `read` parses the labels back (tests compare them to the tables to a pixel).

Written by hand: the format is plain text lines; no kept library writes it from arbitrary rows.
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path

from framefleet.exports.coords import yolo_cxcywh, yolo_to_xyxy
from framefleet.exports.selection import Selection


def label_path(out: Path, item: str) -> Path:
    """The label file of ``item``: its key under ``labels/`` with the suffix ``.txt``."""
    return out / "labels" / (posixpath.splitext(item)[0] + ".txt")


def write(selection: Selection, out: Path, image_root: str = "") -> list[Path]:
    """Write the labels, ``images.txt`` and ``data.yaml`` under ``out``; return their paths.

    ``image_root``: the folder the images are in, written into ``images.txt`` before each key
    (default: each image's source URI).
    """
    written: list[Path] = []
    lines = []
    for image in selection:
        path = label_path(out, image.item)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [
            " ".join(
                [
                    str(box.class_id),
                    *(
                        f"{v:.6f}"
                        for v in yolo_cxcywh(
                            box.x1, box.y1, box.x2, box.y2, image.width, image.height
                        )
                    ),
                ]
            )
            for box in image.boxes
        ]
        path.write_text("".join(f"{row}\n" for row in rows))
        written.append(path)
        lines.append(posixpath.join(image_root, image.item) if image_root else image.source)
    out.mkdir(parents=True, exist_ok=True)
    (out / "images.txt").write_text("".join(f"{line}\n" for line in lines))
    names = "".join(f"  {c}: {_yaml_str(name)}\n" for c, name in selection.classes.items())
    (out / "data.yaml").write_text(
        f"path: {_yaml_str(str(out.resolve()))}\ntrain: images.txt\nval: images.txt\n"
        f"names:\n{names}"
    )
    return [*written, out / "images.txt", out / "data.yaml"]


def read(
    out: Path, item: str, width: int, height: int
) -> list[tuple[int, float, float, float, float]]:
    """The boxes of ``item``'s label file as ``(class, x1, y1, x2, y2)`` in pixels."""
    boxes = []
    for line in label_path(out, item).read_text().splitlines():
        class_id, *values = line.split()
        cx, cy, w, h = (float(v) for v in values[:4])
        boxes.append((int(class_id), *yolo_to_xyxy(cx, cy, w, h, width, height)))
    return boxes


def _yaml_str(text: str) -> str:
    """A YAML double-quoted scalar (JSON's escaping is valid YAML)."""
    return json.dumps(text)
