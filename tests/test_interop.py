"""Exports read by Datumaro, the converter behind CVAT: the COCO and CVAT exports of a real
model's boxes on the shared photos import with every annotation.

Datumaro pins OpenCV below 5, so this runs in CI's OpenCV 4.13 environment (`.ci/run`), where
`scripts/bootstrap` adds it (``EXTRA_PIP``)."""

from __future__ import annotations

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
except ImportError:  # the main run leaves this file out (scripts/test); a plain pytest skips it
    dm = None


@pytest.fixture(scope="module")
def results_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An output root whose tables hold yolox-nano's boxes on the shared photos."""
    if dm is None:
        missing_tool("datumaro is not installed: EXTRA_PIP=datumaro scripts/bootstrap (OpenCV 4)")
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
