"""Model files on disk: find them in the model directory, download missing ones, verify sha256.

No OpenCV here: this only turns registry `FileSpec`s into verified local paths.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from framefleet.core.errors import ChecksumMismatch, ModelError, ModelLoadError
from framefleet.core.registry import FileSpec, ModelSpec

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def read_labels(path: Path) -> list[str]:
    """Class names from a labels file: one per line, blank lines skipped."""
    text = path.read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class ModelStore:
    """Verified model files under one directory.

    Args:
        model_dir: where registry paths are resolved (FRAMEFLEET_MODEL_DIR).
        download: fetch a missing file from its registry URL; off, a missing file is an error.
        timeout_s: per-request timeout of a download, seconds.

    Example:
        >>> store = ModelStore(Path("../shared/models"))
        >>> store.path(registry.get("yolox-nano").files["model"])  # doctest: +SKIP
    """

    model_dir: Path
    download: bool = True
    timeout_s: float = 60.0
    # Files already hashed by this process, keyed by (path, size, mtime): hash once per process.
    _verified: dict[tuple[str, int, int], str] = field(default_factory=dict, repr=False)

    def path(self, spec: FileSpec) -> Path:
        """The local, verified path of ``spec``, downloading it first if missing.

        Raises:
            ModelLoadError: the file is missing and has no URL (or downloads are off).
            ModelError: the download failed.
            ChecksumMismatch: the file's sha256 differs from the registry's.
        """
        target = self.model_dir / spec.path
        if not target.is_file():
            if not (self.download and spec.url):
                raise ModelLoadError(
                    f"model file {target} is missing and "
                    + ("downloads are off" if spec.url else "the registry gives no URL for it")
                    + "; put the file there or set FRAMEFLEET_MODEL_DIR to the folder that has it"
                )
            self._download(spec.url, spec.sha256, target)
        self._verify(spec, target)
        return target

    def digest(self, spec: FileSpec) -> str:
        """The sha256 of the verified file of ``spec`` (hashed once per process, then cached).

        Raises:
            The errors of `path`.
        """
        return self._verify(spec, self.path(spec))

    def files(self, model: ModelSpec) -> dict[str, Path]:
        """Verified paths of every file role of ``model``."""
        return {role: self.path(f) for role, f in model.files.items()}

    def labels(self, model: ModelSpec) -> list[str]:
        """Class names of ``model``, one per line of its labels file (empty if it has none)."""
        if model.labels is None:
            return []
        return read_labels(self.path(model.labels))

    def _verify(self, spec: FileSpec, target: Path) -> str:
        st = target.stat()
        key = (str(target), st.st_size, st.st_mtime_ns)
        digest = self._verified.get(key)
        if digest is None:
            digest = sha256_file(target)
            self._verified[key] = digest
        if spec.sha256 is None:
            log.info("model file %s is not pinned; its sha256 is %s", target, digest)
        elif digest != spec.sha256:
            raise ChecksumMismatch(
                f"model file {target} has sha256 {digest}, the registry expects {spec.sha256}; "
                "delete the file to download it again, or fix the sha256 in your registry file"
            )
        return digest

    def _download(self, url: str, sha256: str | None, target: Path) -> None:
        made = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._fetch(url, sha256, target)
        except Exception as exc:
            for folder in made:  # a failed download leaves no empty folders (a typo'd path)
                with contextlib.suppress(OSError):
                    folder.rmdir()
            if self.model_dir in made and type(exc) is ModelError:
                raise ModelError(
                    f"{exc}; the model folder {self.model_dir} does not exist: is --model-dir / "
                    "FRAMEFLEET_MODEL_DIR the folder that has your model files?"
                ) from exc
            raise

    def _fetch(self, url: str, sha256: str | None, target: Path) -> None:
        log.info("downloading %s to %s", url, target)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with (
                os.fdopen(fd, "wb") as out,
                urllib.request.urlopen(url, timeout=self.timeout_s) as resp,
            ):
                digest = hashlib.sha256()
                while chunk := resp.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            if sha256 is not None and digest.hexdigest() != sha256:
                raise ChecksumMismatch(
                    f"download of {url} has sha256 {digest.hexdigest()}, the registry expects "
                    f"{sha256}; the file was refused (not saved to {target})"
                )
            os.replace(tmp, target)
        except (urllib.error.URLError, OSError) as exc:
            raise ModelError(
                f"could not download model file {url} to {target}: {exc}; check the network, "
                "or put the file there by hand"
            ) from exc
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
