"""`LocalStorage`: a folder on the local filesystem as an object store."""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from framefleet.core.errors import ObjectNotFound, StorageError, StorageUnavailable
from framefleet.core.storage.base import (
    Storage,
    StorageObject,
    check_key,
    check_prefix,
    matches,
    suffix_matcher,
    uri_scheme,
)

TEMP_PREFIX = ".framefleet-tmp."
"""Name prefix of the temporary files a write renames into place; `list` skips them."""

_FILE_MODE = 0o666  # the umask still applies, as for any file the process creates


class LocalStorage(Storage):
    """A folder used as an object store; keys map to files below it.

    Writes go to a temporary file in the target's directory, then are renamed over the target
    with `os.replace`, so readers never see a partial file and a killed process never leaves
    one. With ``durable`` (FRAMEFLEET_FSYNC=1 on workers), the file is fsynced before the rename
    and its folder after it, so a written file also survives a power loss; that costs 4 to 8 %
    of a local job's throughput (`benchmarks.throughput`). Symlinks are followed when
    reading, but a write never lands outside the root: one whose folder resolves through a
    symlink to a place outside it is refused (an output key derives from an input key, and an
    input folder may hold links the user did not make).

    Example:
        >>> storage = LocalStorage("/data/out")        # or "file:///data/out"
        >>> storage.write_bytes("cats/001.json", b"{}")
        >>> storage.uri_for("cats/001.json")
        'file:///data/out/cats/001.json'
    """

    def __init__(self, root: str | os.PathLike[str], durable: bool = False) -> None:
        """Bind to ``root``: a plain path (relative to the working directory) or ``file://`` URI;
        ``durable``: fsync each write (see the class).

        Raises:
            StorageError: ``root`` is a URI of another scheme, or a ``file://`` URI whose path
                is not absolute.
        """
        text = os.fspath(root)
        scheme = uri_scheme(text)
        if scheme == "file":
            text = text[len("file://") :]
            if not text.startswith("/"):
                raise StorageError(
                    f"file URI {os.fspath(root)!r} must hold an absolute path, "
                    "e.g. 'file:///data/in/'"
                )
        elif scheme:
            raise StorageError(f"LocalStorage takes a path or file:// URI, got {text!r}")
        self.root = Path(os.path.abspath(text))
        self.durable = durable
        self.uri = "file://" + self.root.as_posix().rstrip("/") + "/"

    def path_for(self, key: str) -> Path:
        """Return the filesystem path of ``key``; `check_key` keeps it inside the root."""
        return self.root / check_key(key)

    def read_bytes(self, key: str) -> bytes:
        """Read the file at `path_for` ``(key)``; see `Storage.read_bytes`."""
        path = self.path_for(key)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise self._translate(exc, "read", key) from exc

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Write via a temp file and `os.replace`; ``content_type`` is ignored here."""
        path = self.path_for(key)
        try:
            for attempt in range(3):
                self._check_inside(path.parent, key)
                path.parent.mkdir(parents=True, exist_ok=True)
                self._check_inside(path.parent, key)  # a link may appear between check and mkdir
                try:
                    _write_atomic(path, data, self.durable)
                    return
                except FileNotFoundError:
                    if attempt == 2:  # a `delete` pruned the folder in between: make it again
                        raise
        except OSError as exc:
            raise self._translate(exc, "write", key) from exc

    def download(self, key: str, path: Path) -> None:
        """Copy the file; see `Storage.download`."""
        try:
            shutil.copyfile(self.path_for(key), path)
        except OSError as exc:
            raise self._translate(exc, "read", key) from exc

    def upload(self, path: Path, key: str) -> None:
        """Copy ``path`` next to the key, then rename it over the key (atomic)."""
        target = self.path_for(key)
        temp = target.with_name(TEMP_PREFIX + secrets.token_hex(8))
        try:
            self._check_inside(target.parent, key)
            target.parent.mkdir(parents=True, exist_ok=True)
            self._check_inside(target.parent, key)
            try:
                shutil.copyfile(path, temp)
            except FileNotFoundError:  # a `delete` pruned the folder in between: make it again
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, temp)
            if self.durable:
                _fsync_path(temp)
            os.replace(temp, target)
            if self.durable:
                _fsync_path(target.parent)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise self._translate(exc, "write", key) from exc

    def delete(self, key: str) -> None:
        """Unlink the file, then the folders it leaves empty below the root (S3 has no empty
        folders either); see `Storage.delete`. Like writes, never through a folder that resolves
        outside the root."""
        path = self.path_for(key)
        self._check_inside(path.parent, key, action="delete")
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise self._translate(exc, "delete", key) from exc
        for folder in path.parents:
            if folder == self.root or self.root not in folder.parents:
                break
            try:
                folder.rmdir()
            except OSError:  # not empty (or gone): the folders above are not empty either
                break

    def open_read(self, key: str) -> BinaryIO:
        """Open the file; see `Storage.open_read`."""
        try:
            return self.path_for(key).open("rb")
        except OSError as exc:
            raise self._translate(exc, "read", key) from exc

    def local_path(self, key: str) -> Path | None:
        """`path_for` ``(key)``: readers open the file in place."""
        return self.path_for(key)

    def _check_inside(self, folder: Path, key: str, action: str = "write") -> None:
        """Raise `StorageError` if ``folder`` resolves (symlinks followed) outside the root."""
        root = os.path.realpath(self.root)
        real = os.path.realpath(folder)
        if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
            raise StorageError(
                f"refusing to {action} {self.uri}{key}: its folder resolves to {real}, outside the "
                f"storage root {root} (through a symlink); remove the link or choose another "
                "output folder"
            )

    def exists(self, key: str) -> bool:
        """Tell whether a regular file (or a symlink to one) has this key."""
        return self.path_for(key).is_file()

    def list(
        self, prefix: str = "", suffixes: Iterable[str] | None = None, start_after: str = ""
    ) -> Iterator[StorageObject]:
        """Walk the folder lazily, one directory in memory at a time; see `Storage.list`."""
        folder, _, name_prefix = check_prefix(prefix).rpartition("/")
        return self._iterate(folder, name_prefix, suffix_matcher(suffixes), start_after)

    def _iterate(
        self, folder: str, name_prefix: str, wanted: tuple[str, ...] | None, start_after: str
    ) -> Iterator[StorageObject]:
        start = self.root / folder if folder else self.root
        try:
            for obj in _walk(start, folder + "/" if folder else "", name_prefix, wanted):
                if obj.key > start_after:
                    yield obj
        except OSError as exc:
            raise self._translate(exc, "list", folder) from exc

    def _translate(self, exc: OSError, action: str, key: str) -> StorageError:
        where = f"{self.uri}{key}"
        missing = FileNotFoundError | IsADirectoryError | NotADirectoryError
        if action == "read" and isinstance(exc, missing):
            return ObjectNotFound(
                f"object not found: {where} ({exc.strerror}); check the key and the storage root"
            )
        if isinstance(exc, PermissionError):
            return StorageUnavailable(
                f"permission denied to {action} {where}; check the "
                "permissions of the folder and of the user running this"
            )
        if exc.errno == errno.ENOSPC:
            return StorageError(f"cannot {action} {where}: no space left on the device")
        return StorageError(f"cannot {action} {where}: {exc}")


def _write_atomic(path: Path, data: bytes, durable: bool) -> None:
    # O_EXCL with a random name: two writers of the same key never share a temp file, and the
    # last os.replace wins whole.
    temp = path.with_name(TEMP_PREFIX + secrets.token_hex(8))
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                # Without it a power loss after the rename can leave an empty file under the name.
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_path(path.parent)  # the rename itself, so the name survives a power loss too


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some filesystems (FUSE mounts, some network ones) cannot fsync a folder; the file
        # itself was fsynced, which is the part that matters most.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF) or not path.is_dir():
            raise
    finally:
        os.close(fd)


def _walk(
    folder: Path, base: str, name_prefix: str, wanted: tuple[str, ...] | None
) -> Iterator[StorageObject]:
    """Yield files below ``folder`` in global key order, one directory in memory at a time."""
    try:
        with os.scandir(folder) as scan:
            entries = [entry for entry in scan if entry.name.startswith(name_prefix)]
    except (FileNotFoundError, NotADirectoryError):
        return  # like an S3 prefix with no objects
    # Sorting "dir/" rather than "dir" makes the walk yield keys in plain string order, the
    # order S3 lists in: "a.jpg" < "a/x.jpg" because "." < "/".
    children = sorted(
        (
            (entry.name + "/" if entry.is_dir() else entry.name, entry)
            for entry in entries
            if not entry.name.startswith(TEMP_PREFIX)
        ),
        key=lambda child: child[0],
    )
    for name, entry in children:
        if name.endswith("/"):
            yield from _walk(Path(entry.path), base + name, "", wanted)
        elif entry.is_file() and matches(name, wanted):
            try:
                stat = entry.stat()
            except FileNotFoundError:
                continue  # deleted since the scan: it is no longer an object
            tag = f"{stat.st_size}:{stat.st_mtime_ns}"
            yield StorageObject(base + name, stat.st_size, tag, stat.st_mtime, stat.st_ctime)
