"""Start a throwaway ``redis-server`` on a free loopback port (tests and the demo).

It keeps nothing on disk (``--save '' --appendonly no``), so a restart empties it, which is what
fault tests of a Redis restart want unless they pass ``persist=True``. With ``password`` it requires
AUTH, and with ``tls`` it listens for TLS only (``rediss://``), as a production Redis should.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

from framefleet.core.errors import ConfigError
from framefleet.services.ports import free_port
from framefleet.state.connection import wait_ready

INSTALL_HINT = (
    "install it with `apt-get install -y redis-server` (Debian/Ubuntu) or `brew install redis`"
)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for a TLS Redis: the CA that signed the server certificate, the certificate and
    its key. Clients verify the server against ``ca``; the server does not ask clients for one."""

    ca: Path
    cert: Path
    key: Path


class RedisServer:
    """A ``redis-server`` child process.

    Example:
        >>> with RedisServer(tmp_path) as server:
        ...     client = redis.Redis.from_url(server.url)
    """

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        persist: bool = False,
        password: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.persist = persist
        self.password = password
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``; ``rediss://:PASSWORD@...?ssl_cert_reqs=required&
        ssl_ca_certs=CA`` with a password and TLS (redis-py and kombu both read those options)."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        if self.tls is None:
            return f"redis://{auth}127.0.0.1:{self.port}/0"
        query = urlencode({"ssl_cert_reqs": "required", "ssl_ca_certs": str(self.tls.ca)})
        return f"rediss://{auth}127.0.0.1:{self.port}/0?{query}"

    @property
    def log_path(self) -> Path:
        """The server's log file."""
        return self.workdir / f"redis-{self.port}.log"

    def start(self, timeout_s: float = 20.0) -> RedisServer:
        """Start the server and wait until it answers PING.

        Raises:
            ConfigError: ``redis-server`` is not installed, or did not come up in time.
        """
        binary = shutil.which("redis-server")
        if binary is None:
            raise ConfigError(f"redis-server not found on PATH; {INSTALL_HINT}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--logfile",
            str(self.log_path),
            "--save",
            "",
            "--daemonize",
            "no",
        ]
        args += ["--appendonly", "yes" if self.persist else "no"]
        if self.tls is not None:
            args[args.index("--port") + 1] = "0"  # TLS only: no plain-text port at all
            args += ["--tls-port", str(self.port), "--tls-auth-clients", "no"]
            args += ["--tls-cert-file", str(self.tls.cert), "--tls-key-file", str(self.tls.key)]
            args += ["--tls-ca-cert-file", str(self.tls.ca)]
        if self.password:
            # From stdin, not argv: a password on a command line shows in `ps`.
            args.append("-")
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if self.password else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        if self.password and self.process.stdin is not None:
            self.process.stdin.write(f'requirepass "{self.password}"\n'.encode())
            self.process.stdin.close()
        process = self.process
        if wait_ready(self.url, timeout_s, alive=lambda: process.poll() is None):
            return self
        self.stop()
        raise ConfigError(
            f"redis-server on port {self.port} did not start; log:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 5 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL the server at once (fault tests: a crash, not a shutdown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
