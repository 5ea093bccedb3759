"""Images per second of each "bring your own model" family beside yolox-nano, same images, same run.

The models are the ones tests/test_own_models.py makes (Ultralytics YOLOv8n, YOLO11n, -seg,
-pose, -cls, an NMS-inside export, RT-DETR-l, a torchvision ResNet-18; seeded weights, input
320), added with ``framefleet models add``. Each model runs the whole per-image path (preprocess,
forward, decode) on every shared photo, one thread, on both engines; rounds go model after model
so a machine whose speed drifts slows all alike, and each figure is the median round.

Usage::

    .venv/bin/python -m benchmarks.own_models                     # makes the models (~1 min)
    .venv/bin/python -m benchmarks.own_models --models-dir DIR    # a model dir models add filled
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.shared import model_dir, shared_data
from framefleet.core.modelstore import ModelStore
from framefleet.core.registry import ModelSpec, load_registry
from framefleet.inference.models import load_adapter
from framefleet.inference.models.base import Adapter, Image

REPO = Path(__file__).resolve().parents[1]
BASELINE = "yolox-nano"


def make_models(images: list[Path], tmp: Path) -> Path:
    """The test models, made by the reference venv and added to a fresh model dir."""
    python = subprocess.run(
        [str(REPO / "scripts" / "reference")], check=True, capture_output=True, text=True
    ).stdout.split()[-1]
    made = tmp / "reference"
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(tmp / "ultralytics")}
    script = REPO / "tests" / "reference" / "ultralytics_models.py"
    subprocess.run([python, str(script), str(made), *map(str, images)], check=True, env=env)
    folder = tmp / "models"
    for onnx in sorted(made.glob("*.onnx")):
        subprocess.run(
            ["framefleet", "--model-dir", str(folder), "models", "add", str(onnx)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return folder


def one_round(adapter: Adapter, images: list[Image]) -> float:
    """Images per second of one pass over ``images``."""
    start = time.perf_counter()
    for image in images:
        adapter(image)
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, help="A model dir `models add` filled.")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    shared = shared_data()
    paths = sorted(
        p for p in (shared / "media" / "images").iterdir() if p.suffix in (".jpg", ".bmp")
    )
    images: list[Image] = [np.asarray(cv2.imread(str(p)), np.uint8) for p in paths]
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory(prefix="framefleet-bench-") as tmp:
        added = args.models_dir or make_models(paths, Path(tmp))
        registry = load_registry(added / "models.toml")
        entries: list[tuple[ModelSpec, ModelStore]] = [
            (registry.get(BASELINE), ModelStore(model_dir(shared), download=False))
        ]
        own = sorted(set(registry.models) - set(load_registry().models))
        entries += [(registry.get(n), ModelStore(added, download=False)) for n in own]
        rows = []
        for engine in ("cv2.dnn", "onnxruntime"):
            adapters = [
                (s, load_adapter(s, store, engine=engine, threads=1)) for s, store in entries
            ]
            for _, adapter in adapters:
                adapter(images[0])  # warm
            rates: dict[str, list[float]] = {s.name: [] for s, _ in adapters}
            for _ in range(args.rounds):
                for spec, adapter in adapters:
                    rates[spec.name].append(one_round(adapter, images))
            base = statistics.median(rates[BASELINE])
            for spec, _ in adapters:
                rate = statistics.median(rates[spec.name])
                rows.append((spec.name, spec.family, spec.preprocess.input_wh, engine, rate, base))
    print(f"{len(images)} shared photos x {args.rounds} rounds, one thread, median round")
    print(f"{'model':<14}{'family':<18}{'input':>9}  {'engine':<12}{'images/s':>9}  vs yolox")
    for name, family, (w, h), engine, rate, base in rows:
        print(
            f"{name:<14}{family:<18}{f'{w}x{h}':>9}  {engine:<12}{rate:>9.1f}{rate / base:>9.2f}x"
        )


if __name__ == "__main__":
    main()
