"""Exports read by the tools they are for: Datumaro (the converter behind CVAT) imports the COCO
and CVAT exports of a real model's boxes on the shared photos with every annotation, and the Label
Studio SDK validates every prediction of the Label Studio export against its config.

Both pin OpenCV below 5, so this runs in CI's OpenCV 4.13 environment (`.ci/run`), where
`scripts/bootstrap` adds them (``EXTRA_PIP``)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from helpers import IMAGES_DIR, MODEL_DIR, missing_tool

from framefleet.core.storage import open_storage
from framefleet.core.tables import Rows
from framefleet.dataset import open_results, write_part
from framefleet.exports import export
from framefleet.inference import load_model
from framefleet.inference.pipeline import process_image

try:
    import datumaro as dm

    with warnings.catch_warnings():  # the SDK still declares Pydantic V1 validators
        warnings.simplefilter("ignore", DeprecationWarning)
        from label_studio_sdk.label_interface import LabelInterface
except ImportError:  # the main run leaves this file out (scripts/test); a plain pytest skips it
    dm = None


@pytest.fixture(scope="module")
def results_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An output root whose tables hold yolox-nano's boxes on the shared photos."""
    if dm is None:
        missing_tool(
            "datumaro and label-studio-sdk are not installed: OPENCV='opencv-python-headless=="
            "4.13.0.92' EXTRA_PIP='datumaro label-studio-sdk' VENV=.venv-cv4 scripts/bootstrap"
        )
    media_images = sorted(IMAGES_DIR.iterdir())
    root = tmp_path_factory.mktemp("interop")
    src = open_storage(str(media_images[0].parent))
    dst = open_storage(str(root / "out"))
    model = load_model("yolox-nano", model_dir=MODEL_DIR, download=False)
    rows = Rows("interop-b0000000", "interop")
    for path in media_images:
        result = process_image(path.name, src, dst, model)
        assert result.ok, result.message
        assert result.document is not None
        rows.add_document(path.name, result.document)
    assert write_part(dst, rows)
    return root / "out"


def test_datumaro_imports_the_coco_and_cvat_exports(results_root: Path, tmp_path: Path) -> None:
    with open_results(open_storage(str(results_root))) as results:
        boxes = results.sql("SELECT count(*) FROM detections").fetchone()
        export(results, "coco", tmp_path / "coco", with_images=True)
        export(results, "cvat", tmp_path / "cvat", with_images=True)
    assert boxes is not None
    assert boxes[0] > 10
    for folder, fmt in (("coco", "coco_instances"), ("cvat", "cvat")):
        dataset = dm.Dataset.import_from(str(tmp_path / folder), fmt)
        found = sum(
            1 for item in dataset for a in item.annotations if a.type == dm.AnnotationType.bbox
        )
        assert found == boxes[0], fmt
        assert len(dataset) == len(list((results_root).glob("*.json")))


def test_label_studio_sdk_validates_every_prediction(results_root: Path, tmp_path: Path) -> None:
    with open_results(open_storage(str(results_root))) as results:
        boxes = results.sql("SELECT count(*) FROM detections").fetchone()
        export(results, "labelstudio", tmp_path / "ls", image_root="/data/local-files/?d=photos")
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    interface = LabelInterface((tmp_path / "ls" / "config.xml").read_text())
    assert len(tasks) == len(list(results_root.glob("*.json")))
    regions = 0
    for task in tasks:
        (prediction,) = task["predictions"]
        assert interface.validate_prediction(prediction, return_errors=True) == []
        # (validate_task itself calls validate_prediction without the prediction: an SDK bug)
        assert all(task["data"].get(o.value_name) for o in interface.objects)
        regions += len(prediction["result"])
    assert boxes == (regions,)
    broken = {
        **tasks[0]["predictions"][0],
        "result": [{**tasks[0]["predictions"][0]["result"][0], "from_name": "nope"}],
    }
    assert interface.validate_prediction(broken, return_errors=True)  # the check can fail
