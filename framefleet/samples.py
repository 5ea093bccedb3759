"""Sample media for the demo: found in a local media folder, else downloaded with sha256 checks.

The files are real photos and short clips from public repositories (licences in
``shared/media/SOURCES.md``); the project ships none of them.
"""

from __future__ import annotations

import os
from pathlib import Path

from framefleet.core.errors import ChecksumMismatch, ConfigError, ModelError
from framefleet.core.modelstore import ModelStore
from framefleet.core.registry import FileSpec

_DARKNET = "https://raw.githubusercontent.com/pjreddie/darknet/master/data"
_INTEL = "https://github.com/intel-iot-devkit/sample-videos/raw/master"

SAMPLES: tuple[FileSpec, ...] = (
    FileSpec(
        "images/darknet_dog.jpg",
        "5a9522051c3cec2bbd2f6323fccba32e8fbf3ddcc2b3e2fd46b04c720bc6f866",
        f"{_DARKNET}/dog.jpg",
    ),
    FileSpec(
        "images/darknet_eagle.jpg",
        "f95f57297fd51a6c5ddceb5ed6916fa759d1d65f402fee34c05b31a9608755c0",
        f"{_DARKNET}/eagle.jpg",
    ),
    FileSpec(
        "images/darknet_giraffe.jpg",
        "00dc48a9b2af8a1fe4c4b79319726591f1033c7e1150f21e7577a79f3b6659f1",
        f"{_DARKNET}/giraffe.jpg",
    ),
    FileSpec(
        "images/darknet_horses.jpg",
        "c8f0a677a1356569e2ce71d2fa88c1030c0ae57ecf5e14170e02d9a86a20dcb4",
        f"{_DARKNET}/horses.jpg",
    ),
    FileSpec(
        "images/darknet_kite.jpg",
        "87410f52f79cc256c3949b48a3548632c07c8e9943468ef8caa6250f6643be8e",
        f"{_DARKNET}/kite.jpg",
    ),
    FileSpec(
        "images/darknet_person.jpg",
        "cdcbab947e46110fc2b77784ac54ddbbab2640f1e44cb5e91fc8984a9793a7d1",
        f"{_DARKNET}/person.jpg",
    ),
    FileSpec(
        "images/darknet_scream.jpg",
        "dcab7bae866fbb396e01ab27a9c8d2d40b3e80911dafb05a5fa18d1bac6b8d17",
        f"{_DARKNET}/scream.jpg",
    ),
    FileSpec(
        "video/intel_person-bicycle-car-detection.gif",
        "be7f06d3b268fa3d0906f52faef80d14a4788da7a6825197667f474e26caf246",
        f"{_INTEL}/person-bicycle-car-detection.gif",
    ),
)
"""What the demo downloads when no local media folder is found."""

DEMO_VIDEOS = (
    "person_walk_10s_768x432_mp4v.mp4",
    "parking_lot_person_bicycle_car_480x270_mp4v.mp4",
    "intel_person-bicycle-car-detection.gif",
)
"""Short clips the demo submits from a local media folder (longer ones only with --all-media)."""


def shared_dir() -> Path | None:
    """The project's shared data folder: FRAMEFLEET_SHARED_DIR, else ``../shared`` beside the
    checkout (how developers and CI lay it out), else ``../shared`` beside the working directory
    (an installed, non-editable copy run from the clone); None when none exists."""
    return next((c for c in shared_candidates() if c.is_dir()), None)


def shared_candidates() -> list[Path]:
    """Where `shared_dir` looks, in order."""
    env = os.environ.get("FRAMEFLEET_SHARED_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared")
    candidates.append(Path.cwd().resolve().parent / "shared")
    return candidates


def demo_media(media_dir: Path | None, cache_dir: Path, all_media: bool = False) -> list[Path]:
    """Local paths of the media to submit: from ``media_dir`` (images, plus the short clips unless
    ``all_media``), or the downloaded `SAMPLES` when there is no media folder.

    Raises:
        ConfigError: there is no media folder and the sample photos cannot be downloaded; the
            message says where it looked and how to point it at one.
        ChecksumMismatch: a download did not match its sha256.
    """
    if media_dir is not None and media_dir.is_dir():
        images = sorted(p for p in (media_dir / "images").glob("*") if p.is_file())
        videos = sorted(p for p in (media_dir / "video").glob("*") if p.is_file())
        if not all_media:
            videos = [v for v in videos if v.name in DEMO_VIDEOS]
        return images + videos
    store = ModelStore(cache_dir)
    try:
        return [store.path(spec) for spec in SAMPLES]
    except ChecksumMismatch:
        raise
    except ModelError as exc:  # the store's words are about models; these are photos
        looked = ", ".join(str(c) for c in shared_candidates())
        raise ConfigError(
            f"no sample media: no shared folder (looked in {looked}) and the sample photos "
            f"could not be downloaded ({exc}). Set FRAMEFLEET_SHARED_DIR to the folder holding "
            "media/ and models/, or run from the clone beside it"
        ) from exc
