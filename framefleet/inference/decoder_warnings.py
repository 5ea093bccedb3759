"""What the C image decoders print while they decode, caught and kept as the item's warnings.

libjpeg reports damage it can live with ("Corrupt JPEG data: 308 extraneous bytes before marker
0xd9", "Premature end of JPEG file") on file descriptor 2 and decodes anyway, and libpng does the
same; OpenCV passes none of it on. In a worker log those were anonymous lines, not tied to any
item. While a decode runs, fd 2 points at a private in-memory file; afterwards the decoders'
lines become the item's warnings (in its result document), and anything else written meanwhile
(another thread's log line) goes on to the real stderr unchanged.

Example:
    >>> with decoder_warnings() as found:
    ...     image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    >>> found
    ['Corrupt JPEG data: 308 extraneous bytes before marker 0xd9']
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

DECODER_LINE = re.compile(
    r"(Corrupt JPEG data|Premature end of JPEG file|Invalid SOS parameters|Warning: unknown JFIF"
    r"|Inconsistent progression sequence|Bogus |libpng warning)[^\n]*"
)
"""Messages libjpeg and libpng print for damage they decode through."""

_lock = threading.Lock()  # fd 2 is the whole process's: one capture at a time
_sink: tuple[int, int] | None = None  # (pid, fd): a forked child makes its own


def _sink_fd() -> int:
    global _sink
    if _sink is None or _sink[0] != os.getpid():
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("framefleet-decoder-stderr")
        else:  # not Linux: an unlinked temporary file does the same
            handle, path = tempfile.mkstemp(prefix="framefleet-stderr-")
            os.unlink(path)
            fd = handle
        _sink = (os.getpid(), fd)
    return _sink[1]


@contextmanager
def decoder_warnings() -> Iterator[list[str]]:
    """Catch what is written to fd 2 inside the block; yield the list the decoders' lines go to.

    Lines that are not the decoders' are written on to the real stderr when the block ends.
    """
    found: list[str] = []
    with _lock:
        sink = _sink_fd()
        os.ftruncate(sink, 0)
        os.lseek(sink, 0, os.SEEK_SET)
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink, 2)
        try:
            yield found
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            size = os.lseek(sink, 0, os.SEEK_CUR)
            text = os.pread(sink, size, 0).decode("utf-8", "replace") if size else ""
    if not text:
        return
    found.extend(m.group(0).strip() for m in DECODER_LINE.finditer(text))
    rest = DECODER_LINE.sub("", text).strip("\n")
    if rest.strip():
        os.write(2, (rest + "\n").encode())
