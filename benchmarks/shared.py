"""Where the benchmarks find the shared models and media."""

from __future__ import annotations

import os
from pathlib import Path

from framefleet.samples import shared_dir


def shared_data() -> Path:
    """The shared data folder (``../shared`` or FRAMEFLEET_SHARED_DIR); exits when there is none."""
    shared = shared_dir()
    if shared is None:
        raise SystemExit("no shared data folder: set FRAMEFLEET_SHARED_DIR")
    return shared


def model_dir(shared: Path) -> Path:
    """FRAMEFLEET_MODEL_DIR when set, else the shared models."""
    return Path(os.environ.get("FRAMEFLEET_MODEL_DIR", shared / "models"))
