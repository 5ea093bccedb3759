"""A TCP proxy in front of Redis that cuts the connection in the middle of a transaction.

`DropProxy.arm(n)` makes the next ``n`` client writes that carry an ``EXEC`` arrive without it:
the proxy forwards what comes before the ``EXEC`` (Redis has queued the MULTI's commands), then
closes both sides. Redis discards the unfinished transaction and the client sees a dropped
connection, as it would when a network path or Redis itself fails mid-write.
"""

from __future__ import annotations

import contextlib
import socket
import threading

EXEC = b"*1\r\n$4\r\nEXEC\r\n"


class DropProxy:
    """Forwards 127.0.0.1:``port`` to the Redis at ``target_port``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.drops_left = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def arm(self, drops: int) -> None:
        """Cut the next ``drops`` transactions before their EXEC."""
        with self._lock:
            self.drops_left = drops

    def close(self) -> None:
        self._stop.set()
        self._server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if from_client and EXEC in data and self._take_drop():
                    dst.sendall(data[: data.index(EXEC)])
                    break
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _take_drop(self) -> bool:
        with self._lock:
            if self.drops_left <= 0:
                return False
            self.drops_left -= 1
            self.dropped += 1
            return True
