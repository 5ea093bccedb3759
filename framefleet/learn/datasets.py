"""Labelled image sets in the ImageFolder layout, from a folder or an S3 prefix.

    root/<class>/.../<image>     one sub-folder per class; the class is the first path segment

Classes are sorted by name, so class ids are stable for the same folder names. The held-out split
is stratified and seeded: the same data gives the same split.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from framefleet.core import defaults
from framefleet.core.errors import DatasetError
from framefleet.core.storage import Storage, open_storage
from framefleet.inference.imageio import decode_image
from framefleet.inference.models.base import Image


@dataclass(frozen=True)
class LabelledSet:
    """Images and their class ids.

    Attributes:
        storage: where the images are (the data set's root).
        keys: image keys relative to the root, sorted.
        labels: class id of each key, indices into ``classes``.
        classes: class names, sorted.
    """

    storage: Storage
    keys: tuple[str, ...]
    labels: npt.NDArray[np.int64]
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.keys)

    def image(self, index: int) -> Image:
        """Decoded BGR image ``index``.

        Raises:
            ImageDecodeError, StorageError: the object is unreadable.
        """
        key = self.keys[index]
        return decode_image(self.storage.read_bytes(key), self.storage.uri_for(key))

    def images(self, indices: npt.NDArray[np.int64]) -> Iterator[Image]:
        """Decoded images at ``indices``, in order."""
        for i in indices:
            yield self.image(int(i))

    def subset(self, indices: npt.NDArray[np.int64]) -> LabelledSet:
        """The items at ``indices`` (same classes)."""
        return LabelledSet(
            self.storage,
            tuple(self.keys[int(i)] for i in indices),
            self.labels[indices],
            self.classes,
        )


def image_folder(uri: str, min_per_class: int = 2) -> LabelledSet:
    """The ImageFolder at ``uri`` (folder, file:// or s3:// prefix).

    Args:
        uri: the root; each first-level sub-folder is a class.
        min_per_class: fewest images a class may have (one to train, one to hold out).

    Raises:
        DatasetError: fewer than two classes, images directly under the root, or a class with
            fewer than ``min_per_class`` images; the message names them.
        StorageError: the root cannot be listed.

    Example:
        >>> data = image_folder("s3://photos/labelled/")
        >>> data.classes, len(data)
        (('bottle', 'car', 'person'), 72)
    """
    storage = open_storage(uri)
    keys: list[str] = []
    names: list[str] = []
    loose: list[str] = []
    for obj in storage.list(suffixes=defaults.IMAGE_SUFFIXES):
        head, sep, _ = obj.key.partition("/")
        if not sep:
            loose.append(obj.key)
            continue
        if head.startswith(("_", ".")):  # reports and hidden folders are not classes
            continue
        keys.append(obj.key)
        names.append(head)
    if loose:
        raise DatasetError(
            f"{storage.uri} has images directly under the root ({', '.join(loose[:3])}...); the "
            "ImageFolder layout puts each image in a sub-folder named after its class"
        )
    counts = Counter(names)
    if len(counts) < 2:
        raise DatasetError(
            f"{storage.uri} has {len(counts)} class folder(s) with images "
            f"({', '.join(counts) or 'none'}); a classifier needs at least two: "
            "root/<class>/<image>"
        )
    small = {c: n for c, n in counts.items() if n < min_per_class}
    if small:
        raise DatasetError(
            f"classes with fewer than {min_per_class} images in {storage.uri}: {small}; "
            "add images or remove those folders"
        )
    classes = tuple(sorted(counts))
    index = {c: i for i, c in enumerate(classes)}
    return LabelledSet(storage, tuple(keys), np.array([index[n] for n in names], np.int64), classes)


def split(
    data: LabelledSet, holdout: float, seed: int = defaults.LEARN_SEED
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Stratified train / held-out indices: ``holdout`` of each class is held out (at least one).

    Example:
        >>> train, held = split(data, 0.25)
    """
    from sklearn.model_selection import train_test_split

    n_classes = len(data.classes)
    n_held = max(n_classes, round(holdout * len(data)))
    if len(data) - n_held < n_classes:
        raise DatasetError(
            f"{len(data)} images are too few to train on {n_classes} classes and hold out "
            f"{holdout:.0%}; add images or lower --holdout"
        )
    train, held = train_test_split(
        np.arange(len(data)), test_size=n_held, stratify=data.labels, random_state=seed
    )
    return np.sort(train).astype(np.int64), np.sort(held).astype(np.int64)
