"""CVAT: ``annotations.xml`` in "CVAT for images 1.1", the format CVAT exports and imports for
image tasks (and Datumaro reads as ``cvat``): the labels once, then each image with its boxes.

Written by hand with the standard library's ElementTree: the format is a small XML document, and
no kept library writes it from rows without taking a whole dataset model along.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from framefleet.exports.selection import Selection


def write(selection: Selection, out: Path) -> list[Path]:
    """Write ``annotations.xml`` under ``out``; return its path."""
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    labels = ET.SubElement(ET.SubElement(ET.SubElement(root, "meta"), "task"), "labels")
    for name in selection.classes.values():
        ET.SubElement(ET.SubElement(labels, "label"), "name").text = name
    for image_id, image in enumerate(selection):
        node = ET.SubElement(
            root, "image",
            id=str(image_id), name=image.item, width=str(image.width), height=str(image.height),
        )  # fmt: skip
        for box in image.boxes:
            ET.SubElement(
                node, "box",
                label=box.class_name, occluded="0", z_order="0", source="auto",
                xtl=f"{box.x1:.2f}", ytl=f"{box.y1:.2f}", xbr=f"{box.x2:.2f}", ybr=f"{box.y2:.2f}",
            )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    path = out / "annotations.xml"
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return [path]
