"""A local file for a stored video: FFmpeg reads files, not objects."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from framefleet.core.storage import Storage


@contextmanager
def local_video(storage: Storage, key: str) -> Iterator[Path]:
    """The path of ``key``: the file itself for local storage, else a temporary download
    (boto3's managed transfer for S3: streamed to disk, never whole in memory). Raises as
    `Storage.download`."""
    path = storage.local_path(key)
    if path is not None:
        if not path.is_file():
            storage.read_bytes(key)  # raises ObjectNotFound with the storage's own message
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="framefleet-video-") as tmp:
        path = Path(tmp) / ("input" + os.path.splitext(key)[1].lower())
        storage.download(key, path)
        yield path
