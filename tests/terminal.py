"""A real terminal for tests: a command run in a detached tmux session of a given size, its screen
and scrollback read with capture-pane."""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
import time
from pathlib import Path

from helpers import missing_tool


class Terminal:
    """One tmux server of its own (``-L``) running one command in a ``width``×``height`` pane."""

    def __init__(self, tmp: Path, width: int = 80, height: int = 24) -> None:
        if shutil.which("tmux") is None:
            missing_tool("tmux not found; install it: apt-get install -y tmux (scripts/bootstrap)")
        self.tmp = tmp
        self.width, self.height = width, height
        # A server of our own: tmux sockets live in one folder per user, and other test runs on
        # this machine (other checkouts, CI) must never share or kill it.
        self.socket = f"framefleet-test-{os.getpid()}-{secrets.token_hex(4)}"
        self.rc_path = tmp / "terminal.rc"

    def _tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout

    def run(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        """Start ``argv`` in the pane; its exit code lands in `rc_path`. The pane stays open."""
        script = self.tmp / "terminal.sh"
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
        script.write_text(
            f"{exports}export TERM=xterm-256color COLUMNS={self.width} LINES={self.height}\n"
            f"cd {shlex.quote(str(cwd))}\n{shlex.join(argv)}\n"
            f"echo $? > {shlex.quote(str(self.rc_path))}\nsleep 600\n"
        )
        self._tmux(
            "new-session", "-d", "-s", "test", "-x", str(self.width), "-y", str(self.height),
            f"bash --noprofile --norc {shlex.quote(str(script))}",
        )  # fmt: skip

    def wait(self, timeout_s: float) -> int:
        """The command's exit code, once it ended.

        Raises:
            AssertionError: still running after ``timeout_s``; the message has the screen.
        """
        deadline = time.monotonic() + timeout_s
        while not self.rc_path.exists() or not self.rc_path.read_text().strip():
            if time.monotonic() > deadline:
                raise AssertionError(f"still running after {timeout_s} s:\n{self.screen()}")
            time.sleep(0.2)
        return int(self.rc_path.read_text())

    def screen(self, history: bool = False) -> str:
        """What the pane shows (``history``: with everything scrolled off the top)."""
        return self._tmux(
            "capture-pane", "-p", "-J", "-t", "test", *(["-S", "-"] if history else [])
        )

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)
