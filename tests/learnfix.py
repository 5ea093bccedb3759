"""Fixtures and checks shared by the learning tests (finetune, train, evaluate)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from helpers import MODEL_DIR


def model_dir_with_shared(root: Path) -> Path:
    """A writable model directory whose entries link to the shared models (registered models are
    copied under it; /work/shared stays read-only)."""
    root.mkdir(parents=True, exist_ok=True)
    for entry in MODEL_DIR.iterdir():
        link = root / entry.name
        if not link.exists():
            link.symlink_to(entry)
    return root


def assert_readable_png(path: Path, min_wh: tuple[int, int] = (300, 300)) -> None:
    """A PNG that exists, is at least ``min_wh`` and is not blank (several colours, real ink)."""
    assert path.is_file(), f"{path} missing"
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"{path} is not a readable image"
    h, w = image.shape[:2]
    assert w >= min_wh[0], f"{path} is only {w}x{h}"
    assert h >= min_wh[1], f"{path} is only {w}x{h}"
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    assert grey.std() > 5, f"{path} looks blank (std {grey.std():.1f})"
    assert (grey < 128).mean() > 0.005, f"{path} has almost no dark pixels (text, lines)"
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 20, f"{path} has too few colours"
