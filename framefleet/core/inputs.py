"""What an input root holds for framefleet: which keys are images, videos or neither, and the
listing of a root minus framefleet's own outputs. Shared by `submit` and `framefleet run`."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from framefleet.core import defaults
from framefleet.core.outputs import is_report_key
from framefleet.core.storage import Storage, StorageObject


def classify(key: str) -> str:
    """``image``, ``video`` or ``skip`` (not a media file), by the key's suffix."""
    ext = posixpath.splitext(key)[1].lower()
    if ext in defaults.IMAGE_SUFFIXES:
        return "image"
    if ext in defaults.VIDEO_SUFFIXES:
        return "video"
    return "skip"


def input_keys(src: Storage, dst: Storage) -> Iterator[StorageObject]:
    """Keys under ``src``, minus anything under ``dst`` when the output lies inside the input
    (so a rerun never treats last run's outputs as inputs)."""
    inner = dst.uri[len(src.uri) :] if dst.uri.startswith(src.uri) else None
    for obj in src.list():
        if is_report_key(obj.key) or (inner is not None and obj.key.startswith(inner)):
            continue
        yield obj
