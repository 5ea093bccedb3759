"""A throwaway certificate authority and a server certificate for 127.0.0.1, made with the
``openssl`` command at test time (nothing is committed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from helpers import missing_tool

from framefleet.services.redis import TlsFiles


def make_tls_files(folder: Path) -> TlsFiles:
    """A P-256 CA and a server certificate signed by it, valid for IP 127.0.0.1 for one day."""
    if shutil.which("openssl") is None:
        missing_tool("openssl not found; install it with `apt-get install -y openssl`")
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, csr = folder / "server.pem", folder / "server.key", folder / "server.csr"
    ext = folder / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca_ext = ["-addext", "basicConstraints=critical,CA:TRUE"]
    ca_ext += ["-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    sign = ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial"]
    for cmd in (
        ["req", "-x509", *ec, *ca_ext, "-keyout", ca_key, "-out", ca, "-subj", "/CN=test CA"],
        ["req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        [*sign, "-out", cert, "-days", "1", "-extfile", ext],
    ):
        subprocess.run(["openssl", *map(str, cmd)], check=True, capture_output=True, timeout=30)
    return TlsFiles(ca=ca, cert=cert, key=key)
