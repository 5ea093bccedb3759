"""Stored videos for FFmpeg: a local file to read whole, or a seekable source to read in part.

The plan reads every packet of a video, so it takes a local file (S3: boto3's managed download
to a temporary file). A segment needs only the container's index and its own packets, so it
reads through `video_source`: the file itself for local storage, ranged reads for S3.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import av
from av.container import InputContainer

from framefleet.core.storage import Storage


@contextmanager
def local_video(storage: Storage, key: str) -> Iterator[Path]:
    """The path of ``key``: the file itself for local storage, else a temporary download
    (boto3's managed transfer for S3: streamed to disk, never whole in memory). Raises as
    `Storage.download`."""
    path = _in_place(storage, key)
    if path is not None:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="framefleet-video-") as tmp:
        path = Path(tmp) / ("input" + os.path.splitext(key)[1].lower())
        storage.download(key, path)
        yield path


Source = Path | BinaryIO
"""A video FFmpeg can open: a local path, or a seekable binary file object."""


@contextmanager
def video_source(storage: Storage, key: str) -> Iterator[Source]:
    """What FFmpeg reads ``key`` through, reading only what it asks for (see the module doc).
    Raises as `Storage.read_bytes`."""
    path = _in_place(storage, key)
    if path is not None:
        yield path
        return
    with storage.open_read(key) as reader:
        yield reader


def open_container(source: Source) -> InputContainer:
    """Open ``source`` with PyAV (from its start; a file object may be opened several times)."""
    if isinstance(source, Path):
        return av.open(str(source), "r")
    source.seek(0)
    return av.open(source, "r")


def _in_place(storage: Storage, key: str) -> Path | None:
    """The file of ``key`` when ``storage`` is a local folder (checked to exist), else None."""
    path = storage.local_path(key)
    if path is not None and not path.is_file():
        storage.read_bytes(key)  # raises ObjectNotFound with the storage's own message
    return path
