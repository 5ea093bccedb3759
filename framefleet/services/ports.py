"""Free TCP ports on the loopback interface, for servers started by the demo and the tests."""

from __future__ import annotations

import socket
from contextlib import ExitStack

LOOPBACK = "127.0.0.1"


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """Return ``count`` distinct TCP ports that were free on ``host`` a moment ago.

    All sockets stay bound until every port is chosen, so the ports differ from each other.
    Another process may still take one before the server binds it; launchers retry on
    "address already in use".

    Example:
        >>> master, volume = free_ports(2)
    """
    with ExitStack() as stack:
        sockets = [
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            for _ in range(count)
        ]
        for sock in sockets:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def free_port(host: str = LOOPBACK) -> int:
    """Return one TCP port that was free on ``host`` a moment ago; see `free_ports`."""
    return free_ports(1, host)[0]
