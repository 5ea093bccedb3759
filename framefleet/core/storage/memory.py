"""`MemoryStorage`: a dict-backed store with fault injection, for tests and demos.

Stores are named: every ``MemoryStorage("mem://name/...")`` in a process shares the objects of
``name``, so code under test that calls ``open_storage("mem://name/")`` itself sees what the test
wrote. Nothing is shared across processes.
"""

from __future__ import annotations

import mimetypes
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from framefleet.core.errors import ObjectNotFound, StorageError, TransientStorageError
from framefleet.core.storage.base import (
    Storage,
    StorageObject,
    check_key,
    check_prefix,
    matches,
    suffix_matcher,
    uri_scheme,
    with_slash,
)

Operation = Literal["read_bytes", "write_bytes", "exists", "list"]


@dataclass
class _Fault:
    remaining: int
    exc: Exception
    operation: Operation | None


@dataclass
class _Store:
    """The shared state behind one ``mem://name``."""

    objects: dict[str, bytes] = field(default_factory=dict)
    content_types: dict[str, str] = field(default_factory=dict)
    faults: list[_Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def maybe_fail(self, operation: Operation) -> None:
        with self.lock:
            for fault in self.faults:
                if fault.operation in (None, operation):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self.faults.remove(fault)
                    raise fault.exc


_STORES: dict[str, _Store] = {}
_STORES_LOCK = threading.Lock()


def clear_memory_stores() -> None:
    """Forget every named store and its faults (call between tests)."""
    with _STORES_LOCK:
        _STORES.clear()


class MemoryStorage(Storage):
    """An in-process object store with the same contract as the real backends.

    Example:
        >>> storage = MemoryStorage("mem://test/")
        >>> storage.fail_next(2, operation="read_bytes")  # two transient read failures
        >>> storage.write_bytes("a.jpg", b"x")
    """

    def __init__(self, uri: str = "mem://default/") -> None:
        """Bind to ``mem://name/optional/prefix/``, creating the named store on first use.

        Raises:
            StorageError: ``uri`` is not a ``mem://`` URI with a name.
        """
        if uri_scheme(uri) != "mem":
            raise StorageError(f"MemoryStorage takes a mem://name/ URI, got {uri!r}")
        name, _, prefix = uri[len("mem://") :].partition("/")
        if not name:
            raise StorageError(f"memory URI {uri!r} has no store name; expected 'mem://name/'")
        self._prefix = with_slash(prefix) if prefix.strip("/") else ""
        check_prefix(self._prefix)
        self.uri = f"mem://{name}/{self._prefix}"
        with _STORES_LOCK:
            self._store = _STORES.setdefault(name, _Store())

    def fail_next(
        self, times: int = 1, exc: Exception | None = None, operation: Operation | None = None
    ) -> None:
        """Make the next ``times`` matching operations on this store raise ``exc``.

        Faults apply to every `MemoryStorage` of the same name, in the order they were added.

        Args:
            times: How many operations fail before the store behaves again.
            exc: What to raise; defaults to a `TransientStorageError` saying it was injected.
            operation: Only fail this method (``"read_bytes"``, ``"write_bytes"``, ``"exists"``
                or ``"list"``); None fails any.
        """
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times}")
        error = exc or TransientStorageError(f"injected failure on {self.uri}")
        with self._store.lock:
            self._store.faults.append(_Fault(times, error, operation))

    def content_type(self, key: str) -> str:
        """Return the MIME type recorded when ``key`` was written."""
        full = self._full_key(key)
        with self._store.lock:
            if full not in self._store.content_types:
                raise ObjectNotFound(f"object not found: {self.uri_for(key)}")
            return self._store.content_types[full]

    def read_bytes(self, key: str) -> bytes:
        """Return the stored bytes; see `Storage.read_bytes`."""
        full = self._full_key(key)
        self._store.maybe_fail("read_bytes")
        with self._store.lock:
            data = self._store.objects.get(full)
        if data is None:
            raise ObjectNotFound(f"object not found: {self.uri_for(key)}; check the key")
        return data

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Store a copy of ``data``; see `Storage.write_bytes`."""
        full = self._full_key(key)
        self._store.maybe_fail("write_bytes")
        guessed = content_type or mimetypes.guess_type(key)[0] or "application/octet-stream"
        with self._store.lock:
            self._store.objects[full] = bytes(data)
            self._store.content_types[full] = guessed

    def delete(self, key: str) -> None:
        """Forget the key; see `Storage.delete`."""
        full = self._full_key(key)
        with self._store.lock:
            self._store.objects.pop(full, None)
            self._store.content_types.pop(full, None)

    def exists(self, key: str) -> bool:
        """Tell whether the key is stored; see `Storage.exists`."""
        full = self._full_key(key)
        self._store.maybe_fail("exists")
        with self._store.lock:
            return full in self._store.objects

    def list(
        self, prefix: str = "", suffixes: Iterable[str] | None = None, start_after: str = ""
    ) -> Iterator[StorageObject]:
        """Yield from a sorted snapshot of the keys; see `Storage.list`."""
        start = self._prefix + check_prefix(prefix)
        wanted = suffix_matcher(suffixes)
        return self._iterate(start, wanted, self._prefix + start_after if start_after else "")

    def _iterate(
        self, start: str, wanted: tuple[str, ...] | None, after: str
    ) -> Iterator[StorageObject]:
        # A generator, so faults and errors surface on the first next(), as with S3.
        self._store.maybe_fail("list")
        with self._store.lock:
            snapshot = sorted(
                (k, len(v), zlib.crc32(v))
                for k, v in self._store.objects.items()
                if k.startswith(start) and k > after
            )
        for full, size, crc in snapshot:
            key = full[len(self._prefix) :]
            if matches(key, wanted):
                yield StorageObject(key=key, size=size, tag=f"{size}:{crc:08x}")

    def _full_key(self, key: str) -> str:
        return self._prefix + check_key(key)
