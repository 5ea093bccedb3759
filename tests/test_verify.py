"""`framefleet models verify`: both engines on the shared images, every shared model; and the
check catches a broken model file and a preprocessing entry that does not fit the file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
from fleet import cli
from helpers import IMAGES_DIR, MODEL_DIR

from framefleet.core.registry import load_registry
from framefleet.inference.parity import match_by_iou

REGISTRY = load_registry()
SHARED_MODELS = sorted(
    n for n in REGISTRY.names() if (MODEL_DIR / REGISTRY.get(n).files["model"].path).exists()
)
"""Every registry model whose file is among the shared models (the command's default)."""

YOLOX_ENTRY = """
[models.{name}]
task = "detection"
family = "yolox"
files.model = {{ path = "{file}" }}
labels = {{ path = "coco80.names" }}
preprocess = {{ input_wh = [{w}, {h}], resize = "letterbox", pad_value = 114 }}
postprocess = {{ score_threshold = 0.4, nms_threshold = 0.45 }}
"""


def verify(*args: str, model_dir: Path = MODEL_DIR, models_file: Path | None = None):
    cmd = cli("--model-dir", str(model_dir))
    if models_file is not None:
        cmd += ["--models-file", str(models_file)]
    return subprocess.run(
        [*cmd, "models", "verify", *args], capture_output=True, text=True, timeout=280, check=False
    )


SAMPLE = ["coral_face.jpg", "coral_parrot.jpg", "darknet_dog.jpg", "darknet_horses.jpg"]
"""Shared images with faces, a bird, objects and a crowd of one class: every model finds
something on some of them. Four keep the test short; the command's default is all of them."""


def test_every_shared_model_agrees_on_both_engines(tmp_path: Path) -> None:
    for name in SAMPLE:
        shutil.copy(IMAGES_DIR / name, tmp_path / name)
    done = verify("--images", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[3:] if line.strip()}
    assert sorted(rows) == SHARED_MODELS
    assert {"yolox-nano", "fastestdet", "yunet", "ulfd", "mobilenet-v2", "deeplab-v3"} <= set(rows)
    assert all(line.endswith(" ok") for line in rows.values()), rows
    # detections were really compared (not vacuously equal): the detectors found things
    matched = int(rows["yolox-nano"].split()[3])
    assert matched >= 6  # dog, bicycle, car, three horses at least
    assert "network only" in rows["yunet"]
    assert "tolerance: raw |a-b| <= 0.001 x max|a|" in done.stdout


def sample(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(IMAGES_DIR / "darknet_dog.jpg", folder / "darknet_dog.jpg")
    return folder


def lab(tmp_path: Path, name: str, model_bytes: bytes, input_wh: tuple[int, int]) -> Path:
    """A model dir holding one yolox-family file, and a registry file naming it ``name``."""
    (tmp_path / "yolox.onnx").write_bytes(model_bytes)
    shutil.copy(MODEL_DIR / "labels" / "coco80.names", tmp_path / "coco80.names")
    registry = tmp_path / "models.toml"
    w, h = input_wh
    registry.write_text(YOLOX_ENTRY.format(name=name, file="yolox.onnx", w=w, h=h))
    return registry


def test_catches_a_broken_model_file(tmp_path: Path) -> None:
    # NaNs written over some of yolox-nano's weights: onnxruntime's outputs go NaN while
    # cv2.dnn's stay finite (it fuses those weights differently). Either way, not the same model.
    data = bytearray((MODEL_DIR / "detection" / "yolox_nano_416.onnx").read_bytes())
    offset = int(len(data) * 0.8) // 4 * 4
    data[offset : offset + 1024] = np.full(256, np.nan, np.float32).tobytes()
    registry = lab(tmp_path, "yolox-broken", bytes(data), (416, 416))
    done = verify(
        "yolox-broken", "--images", str(sample(tmp_path)), model_dir=tmp_path, models_file=registry
    )
    assert done.returncode == 8, done.stdout + done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("yolox-broken"))
    assert row.endswith("DISAGREE")
    assert "yolox-broken: the engines disagree:" in done.stderr
    assert "has NaN or infinite values" in done.stderr


def test_catches_a_preprocess_entry_that_does_not_fit_the_file(tmp_path: Path) -> None:
    registry = lab(
        tmp_path,
        "yolox-320",
        (MODEL_DIR / "detection" / "yolox_nano_416.onnx").read_bytes(),
        (320, 320),
    )
    done = verify(
        "yolox-320", "--images", str(sample(tmp_path)), model_dir=tmp_path, models_file=registry
    )
    assert done.returncode == 8, done.stdout + done.stderr
    assert (
        "preprocess.input_wh is 320x320 but yolox.onnx declares input [1, 3, 416, 416] (N, C, H, W); "
        "fix the registry entry's input_wh"
    ) in done.stderr


def test_match_by_iou_pairs_best_first_and_leaves_the_rest() -> None:
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], np.float32)
    b = np.array([[21, 21, 31, 31], [0, 0, 10, 10]], np.float32)
    pairs, only_a, only_b = match_by_iou(a, b, 0.5)
    assert [(i, j) for i, j, _ in pairs] == [(0, 1), (1, 0)]
    assert pairs[0][2] == 1.0
    assert (only_a, only_b) == ([2], [])
