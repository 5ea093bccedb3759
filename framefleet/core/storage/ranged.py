"""A seekable file over ranged reads, so FFmpeg can read one segment of a large stored video.

A demuxer reads a container's index (at the start or the end of an MP4) and then the packets it
needs; over HTTP range requests that is a few small reads plus the segment's own bytes, instead
of the whole object. `open_ranged` puts a `BufferedReader` of `BLOCK` bytes on top, so small
reads cost one request per block.
"""

from __future__ import annotations

import io
from collections.abc import Callable

BLOCK = 256 << 10
"""Bytes per range request for small reads (256 KiB): about a tenth of a second of HD video,
so a segment costs few requests and wastes little at its edges."""


class RangeReader(io.RawIOBase):
    """Read-only, seekable bytes of one object of ``size`` bytes, fetched on demand.

    Args:
        size: the object's size in bytes.
        fetch: returns bytes ``[start, end)`` of the object (one range request).

    Attributes:
        fetched: bytes fetched so far (what a segment cost in transfer).

    Example:
        >>> raw = RangeReader(len(data), lambda start, end: data[start:end])
        >>> io.BufferedReader(raw).read(4) == data[:4]
        True
    """

    def __init__(self, size: int, fetch: Callable[[int, int], bytes]) -> None:
        super().__init__()
        self.size = size
        self._fetch = fetch
        self._pos = 0
        self.fetched = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self._pos >= self.size:
            return 0
        end = min(self.size, self._pos + len(buffer))  # BufferedReader asks for >= BLOCK
        data = self._fetch(self._pos, end)
        n = len(data)
        buffer[:n] = data
        self._pos += n
        self.fetched += n
        return n


def open_ranged(size: int, fetch: Callable[[int, int], bytes]) -> io.BufferedReader:
    """A buffered, seekable reader of ``size`` bytes over ``fetch`` (see `RangeReader`)."""
    return io.BufferedReader(RangeReader(size, fetch), buffer_size=BLOCK)
