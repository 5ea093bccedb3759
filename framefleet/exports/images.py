"""The images of an export, copied beside its annotations (``--with-images``) where the format's
layout keeps them, for tools that import a dataset as a folder (CVAT, Datumaro)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from framefleet.core.errors import ConfigError
from framefleet.core.storage import open_storage
from framefleet.exports.selection import ImageRows, Selection

FOLDERS = {"coco": "images/default", "cvat": "images", "yolo": "images"}
"""Where each format's layout keeps the images, under the export folder."""

READERS = 16


def copy_images(selection: Selection, fmt: str, out: Path) -> int:
    """Copy every selected image from its source into the format's image folder under ``out``,
    at its key; return how many.

    Raises:
        ConfigError: the format keeps no images (Label Studio and CSV point at them instead).
        StorageError: an image could not be read.
    """
    folder = FOLDERS.get(fmt)
    if folder is None:
        raise ConfigError(
            f"--with-images does not apply to --format {fmt}: its files point at the images "
            f"(--image-root); it applies to {', '.join(FOLDERS)}"
        )

    def copy(image: ImageRows) -> None:
        root = image.source[: len(image.source) - len(image.item)]
        target = out / folder / image.item
        target.parent.mkdir(parents=True, exist_ok=True)
        open_storage(root).download(image.item, target)

    with ThreadPoolExecutor(READERS, thread_name_prefix="framefleet-export") as pool:
        list(pool.map(copy, selection.images))
    return len(selection.images)
