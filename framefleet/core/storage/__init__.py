"""URI-addressed object storage shared by the producer and the workers.

`open_storage` picks a backend from the URI's scheme:

- ``s3://bucket/prefix/``: `framefleet.core.storage.s3.S3Storage` (boto3, imported only when used);
- ``mem://name/``: `MemoryStorage`, shared by every open of the same name in one process;
- ``file:///abs/path/`` or a plain path: `LocalStorage`.

Example:
    >>> storage = open_storage("s3://frames/in/")
    >>> for obj in storage.list("cats/", suffixes=[".jpg", ".png"]):
    ...     data = storage.read_bytes(obj.key)
"""

from __future__ import annotations

from framefleet.core.errors import StorageError, TransientStorageError
from framefleet.core.storage.base import (
    Storage,
    StorageObject,
    join_uri,
    relative_key,
    split_uri,
    uri_scheme,
)
from framefleet.core.storage.local import LocalStorage
from framefleet.core.storage.memory import MemoryStorage

__all__ = [
    "LocalStorage",
    "MemoryStorage",
    "Storage",
    "StorageObject",
    "TransientStorageError",
    "join_uri",
    "open_storage",
    "relative_key",
    "split_uri",
]

SCHEMES = ("s3://", "mem://", "file://")
"""URI schemes `open_storage` accepts, besides plain paths."""


def open_storage(uri: str, durable: bool = False) -> Storage:
    """Return the storage rooted at ``uri``; no I/O happens until the first operation.

    Args:
        uri: ``s3://bucket/prefix``, ``mem://name/prefix``, ``file:///abs/path`` or a plain
            (absolute or relative) path. A trailing ``/`` is optional.
        durable: fsync local writes (`LocalStorage`); an S3 PUT is durable when it returns.

    Raises:
        StorageError: The scheme is not supported, or the URI lacks its bucket or store name.

    Example:
        >>> open_storage("/data/out").uri
        'file:///data/out/'
    """
    scheme = uri_scheme(uri)
    if scheme == "s3":
        from framefleet.core.storage.s3 import S3Storage  # boto3 costs ~0.2 s to import

        return S3Storage(uri)
    if scheme == "mem":
        return MemoryStorage(uri)
    if scheme in ("file", ""):
        return LocalStorage(uri, durable)
    raise StorageError(
        f"unsupported storage URI {uri!r}: scheme {scheme + '://'!r} is not one "
        f"of {', '.join(SCHEMES)} or a plain path"
    )
