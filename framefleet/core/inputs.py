"""What an input holds for framefleet: a folder, prefix or single file; which keys are images,
videos or neither; the listing of a root minus framefleet's own outputs; and the checks that
refuse an input with no media or an output inside the input. Shared by `submit` and `run`."""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator

from framefleet.core import defaults
from framefleet.core.errors import ConfigError, NoMediaError, ObjectNotFound
from framefleet.core.outputs import is_report_key
from framefleet.core.storage import (
    LocalStorage,
    Storage,
    StorageObject,
    open_storage,
    split_uri,
)


def classify(key: str) -> str:
    """``image``, ``video`` or ``skip`` (not a media file), by the key's suffix."""
    ext = posixpath.splitext(key)[1].lower()
    if ext in defaults.IMAGE_SUFFIXES:
        return "image"
    if ext in defaults.VIDEO_SUFFIXES:
        return "video"
    return "skip"


def input_keys(src: Storage, dst: Storage, start_after: str = "") -> Iterator[StorageObject]:
    """Keys under ``src`` (after ``start_after``, if given), minus anything under ``dst`` when the
    output lies inside the input (so a rerun never treats last run's outputs as inputs)."""
    inner = dst.uri[len(src.uri) :] if dst.uri.startswith(src.uri) else None
    for obj in src.list(start_after=start_after):
        if is_report_key(obj.key) or (inner is not None and obj.key.startswith(inner)):
            continue
        yield obj


def open_input(input_uri: str) -> tuple[Storage, str | None]:
    """The storage to read ``input_uri`` from, and its one key when it names a single file.

    A folder or prefix is listed; a path or URI that names one image or video is a job of one item
    (its folder is the input root, so outputs are named as for that file in a folder).
    """
    if not input_uri.endswith("/") and classify(input_uri) != "skip":
        parent, name = split_uri(input_uri)
        storage = open_storage(parent)
        if storage.exists(name):
            return storage, name
    return open_storage(input_uri), None


def check_output(src: Storage, dst: Storage, single: bool) -> None:
    """Refuse an output root inside a listed input root.

    Outputs there would be read back as inputs by the next run of the same input, whatever tool
    wrote them, so they are refused up front rather than filtered by guesswork.

    Raises:
        ConfigError: ``dst`` is ``src`` or lies under it.
    """
    if single or not dst.uri.startswith(src.uri):
        return
    where = "is the input itself" if dst.uri == src.uri else f"lies inside the input {src.uri}"
    raise ConfigError(
        f"--out {dst.uri} {where}: a later run of that input would take these outputs for "
        f"inputs; choose a folder or prefix beside it, e.g. {src.uri.rstrip('/')}-results/"
    )


def input_listing(src: Storage, dst: Storage, single: str | None) -> Iterator[StorageObject]:
    """What to read: the one key of a single-file input, else `input_keys` (lazy)."""
    return iter([StorageObject(single, 0)]) if single is not None else input_keys(src, dst)


def first_media(
    src: Storage, listing: Iterator[StorageObject], on_item: Callable[[str, str], None]
) -> tuple[StorageObject, int]:
    """The first image or video of ``listing`` and how many other keys came before it.

    Raises:
        ObjectNotFound: a local input file or folder that does not exist.
        NoMediaError: the input is empty, or holds no file with a media suffix.
    """
    skipped = 0
    for obj in listing:
        kind = classify(obj.key)
        on_item(obj.key, kind)
        if kind != "skip":
            return obj, skipped
        skipped += 1
    if isinstance(src, LocalStorage) and not src.root.is_dir():
        # A missing path is read as a folder; one named like a media file was meant as a file.
        what = "file" if classify(src.root.name) != "skip" else "folder"
        raise ObjectNotFound(f"input {what} {src.root} does not exist; check the path")
    suffixes = " ".join(defaults.IMAGE_SUFFIXES + defaults.VIDEO_SUFFIXES)
    what = (
        f"{skipped} files, none of them media"
        if skipped
        else "it is empty (or, for S3, the prefix does not exist)"
    )
    raise NoMediaError(
        f"no image or video under {src.uri}: {what}. framefleet reads files ending in "
        f"{suffixes}; check the path (S3 prefixes are case-sensitive)"
    )
