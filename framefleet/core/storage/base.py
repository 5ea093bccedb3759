"""The storage contract every backend implements, and the key and URI rules they share.

A `Storage` is bound to a root URI (``file:///data/in/``, ``s3://bucket/prefix/``,
``mem://name/``). Objects are addressed by *keys*: relative, ``/``-separated paths under that root,
such as ``cats/001.jpg``. URIs are not percent-encoded: ``file:///data/my images/a.jpg``.

Errors every backend raises, and what a caller should do with them:

- `ObjectNotFound`: permanent, the key does not exist. Do not retry.
- `BucketNotFound`: permanent until someone creates the bucket or fixes the URI. Do not retry.
- `TransientStorageError` (a `StorageUnavailable` *and* a `RetryableError`): the server answered
  5xx or "slow down", or the connection broke mid-request after the client's own retries.
  Retry later.
- `StorageUnavailable` (any other): endpoint unreachable, bad credentials, access denied. Usually
  configuration; retrying helps only if the server comes back.
- `StorageError` (base): a key that is not valid, or any other failure.
"""

from __future__ import annotations

import io
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from framefleet.core.errors import StorageError

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
KEY_EXAMPLE = "'cats/001.jpg'"


@dataclass(frozen=True)
class StorageObject:
    """One object found by `Storage.list`.

    Attributes:
        key: Path relative to the storage root, ``/``-separated, e.g. ``"cats/001.jpg"``.
        size: Size in bytes.
        tag: What changes when the content is rewritten: the S3 ETag, ``size:mtime_ns`` for a
            local file, a checksum in memory; ``""`` where unknown.
        modified: When the object was last written, seconds since the epoch (0.0: unknown).
        changed: When the object last appeared or changed under its name, seconds since the
            epoch: a local file's ctime, which creating, rewriting or moving the file in sets and
            tools that keep mtimes (``cp -p``, ``rsync -a``) do not turn back; 0.0 where the
            store has no such time.
    """

    key: str
    size: int
    tag: str = ""
    modified: float = 0.0
    changed: float = 0.0


class Storage(ABC):
    """An object store bound to one root URI.

    Writes are atomic per object: a reader sees the old bytes or the new bytes, never a mix.
    Keys are validated by `check_key`; a key that could escape the root raises `StorageError`.

    Example:
        >>> storage = open_storage("mem://demo/")
        >>> storage.write_bytes("cats/001.jpg", b"...")
        >>> [obj.key for obj in storage.list(suffixes=[".JPG"])]
        ['cats/001.jpg']
    """

    uri: str
    """Root URI, normalised to end with ``/``."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """Return the whole content of one object.

        Args:
            key: Key relative to the root.

        Raises:
            ObjectNotFound: No object has this key; the message names its full URI.
            BucketNotFound: The S3 bucket does not exist.
            StorageUnavailable: The store is unreachable or refuses our credentials.
            StorageError: The key is invalid, or any other failure.
        """

    @abstractmethod
    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Create or replace one object atomically, creating parent "directories" as needed.

        Args:
            key: Key relative to the root.
            data: The complete new content.
            content_type: MIME type to record where the backend keeps one (S3, memory); guessed
                from the key's suffix when None.

        Raises:
            BucketNotFound: The S3 bucket does not exist.
            StorageUnavailable: The store is unreachable or refuses our credentials.
            StorageError: The key is invalid, or any other failure.
        """

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Tell whether an object has exactly this key (a "directory" prefix is not an object).

        Raises:
            BucketNotFound: The S3 bucket does not exist.
            StorageUnavailable: The store is unreachable or refuses our credentials.
            StorageError: The key is invalid, or any other failure.
        """

    @abstractmethod
    def list(
        self, prefix: str = "", suffixes: Iterable[str] | None = None, start_after: str = ""
    ) -> Iterator[StorageObject]:
        """Yield every object under the root whose key starts with ``prefix``, sorted by key.

        Recursive and lazy: objects are fetched page by page (S3) or directory by directory
        (local) as the caller iterates, so a 100k-object prefix is never held in memory. Errors
        therefore surface on the first ``next()``, not on the call. A missing root or prefix
        yields nothing; a missing S3 bucket raises `BucketNotFound`.

        Args:
            prefix: Key prefix, S3-style: ``"cats/"`` or a partial name such as ``"cats/00"``.
            suffixes: Keep only keys ending with one of these, compared case-insensitively
                (``".jpg"`` matches ``"A.JPG"``). None keeps everything.
            start_after: Only keys sorting after this one (S3 asks the server, ListObjectsV2
                ``StartAfter``; the others skip the keys before it); ``""``: all.

        Raises:
            BucketNotFound: The S3 bucket does not exist.
            StorageUnavailable: The store is unreachable or refuses our credentials.
            StorageError: The prefix is invalid, or any other failure.
        """

    def download(self, key: str, path: Path) -> None:
        """Copy object ``key`` to the local file ``path`` (for readers that need a file).

        The default reads the object into memory; S3 streams it with boto3's managed transfer
        (ranged parts in parallel) and local storage copies the file, so a large video never sits
        in memory. Raises as `read_bytes`.
        """
        path.write_bytes(self.read_bytes(key))

    def upload(self, path: Path, key: str) -> None:
        """Create or replace object ``key`` with the local file ``path``; raises as `write_bytes`.

        The default reads the file into memory; S3 and local storage stream it.
        """
        self.write_bytes(key, path.read_bytes())

    def delete(self, key: str) -> None:
        """Remove object ``key``; a missing key is not an error. Raises as `write_bytes`."""
        raise StorageError(f"{type(self).__name__} cannot delete {self.uri_for(key)}")

    def open_read(self, key: str) -> BinaryIO:
        """A seekable, read-only file object over ``key``, for readers (FFmpeg) that read only the
        parts they need. S3 fetches byte ranges on demand; local storage opens the file; the
        default reads the whole object into memory. Raises as `read_bytes`."""
        return io.BytesIO(self.read_bytes(key))

    def local_path(self, key: str) -> Path | None:
        """The filesystem path of ``key`` when the storage is a local folder, else None."""
        return None

    def uri_for(self, key: str) -> str:
        """Return the full URI of ``key``, e.g. ``s3://bucket/prefix/cats/001.jpg``."""
        return self.uri + check_key(key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


def check_key(key: str) -> str:
    """Return ``key`` unchanged if it is a valid relative key, else raise `StorageError`.

    A valid key is a non-empty, ``/``-separated relative path with no empty, ``.`` or ``..``
    segment and no NUL, so it can never name something outside the storage root.
    """
    if ".." in key.split("/"):
        raise StorageError(
            f"key {key!r} escapes the storage root; use a key under the root, e.g. {KEY_EXAMPLE}"
        )
    if not key or key.startswith("/") or "\0" in key or _has_bad_segment(key.split("/")):
        raise StorageError(
            f"invalid key {key!r}: expected a relative '/'-separated path without "
            f"empty or '.' segments, e.g. {KEY_EXAMPLE}"
        )
    return key


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` unchanged if it is a valid listing prefix, else raise `StorageError`.

    A prefix is ``""`` or a key's beginning: it may end with ``/`` or with a partial name.
    """
    if not prefix:
        return prefix
    segments = prefix.split("/")
    if segments[-1] == "":
        segments = segments[:-1]
    if ".." in segments:
        raise StorageError(f"prefix {prefix!r} escapes the storage root")
    if prefix.startswith("/") or "\0" in prefix or _has_bad_segment(segments):
        raise StorageError(
            f"invalid prefix {prefix!r}: expected '' or the start of a key, "
            f"e.g. 'cats/' or 'cats/00'"
        )
    return prefix


def _has_bad_segment(segments: list[str]) -> bool:
    return any(segment in ("", ".", "..") for segment in segments)


def suffix_matcher(suffixes: Iterable[str] | None) -> tuple[str, ...] | None:
    """Lower-case ``suffixes`` once, for ``key.lower().endswith(matcher)``; None keeps all."""
    if suffixes is None:
        return None
    if isinstance(suffixes, str):
        # A bare ".jpg" would otherwise iterate as ".", "j", "p", "g" and match nearly anything.
        return (suffixes.lower(),)
    return tuple(suffix.lower() for suffix in suffixes)


def matches(key: str, suffixes: tuple[str, ...] | None) -> bool:
    """Tell whether ``key`` passes a `suffix_matcher` result."""
    return suffixes is None or key.lower().endswith(suffixes)


def uri_scheme(uri: str) -> str:
    """Return the lower-case scheme of ``uri`` (``"s3"``, ``"file"``), or ``""`` for a path."""
    match = _SCHEME_RE.match(uri)
    return match.group(1).lower() if match else ""


def split_uri(uri: str) -> tuple[str, str]:
    """Split an object URI into the URI of its parent "directory" and its name.

    Open the parent with `open_storage` and read the name as a key.

    Example:
        >>> split_uri("s3://bucket/in/cats/001.jpg")
        ('s3://bucket/in/cats/', '001.jpg')

    Raises:
        StorageError: ``uri`` names a "directory" (ends with ``/``) or a bare bucket.
    """
    head, sep, name = uri.rpartition("/")
    if not name or (uri_scheme(uri) and head.endswith(":/")):
        raise StorageError(
            f"{uri!r} does not name an object; expected e.g. "
            "'s3://bucket/in/001.jpg' or '/data/in/001.jpg'"
        )
    return (head + sep if sep else "./"), check_key(name)


def join_uri(root_uri: str, key: str) -> str:
    """Return the URI of ``key`` under ``root_uri``, without opening the storage.

    Example:
        >>> join_uri("s3://bucket/out", "cats/001.json")
        's3://bucket/out/cats/001.json'
    """
    return with_slash(root_uri) + check_key(key)


def relative_key(root_uri: str, uri: str) -> str:
    """Return the key of ``uri`` relative to ``root_uri``; the inverse of `join_uri`.

    Example:
        >>> relative_key("s3://bucket/in/", "s3://bucket/in/cats/001.jpg")
        'cats/001.jpg'

    Raises:
        StorageError: ``uri`` is not under ``root_uri``.
    """
    root = with_slash(root_uri)
    if not uri.startswith(root) or uri == root:
        raise StorageError(
            f"{uri!r} is not an object under {root!r}; both must use the same scheme and spelling"
        )
    return check_key(uri[len(root) :])


def with_slash(uri: str) -> str:
    """Return ``uri`` ending with exactly one trailing ``/`` (a root URI)."""
    return uri if uri.endswith("/") else uri + "/"
