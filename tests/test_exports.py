"""`framefleet query` and `framefleet export` on a real job's tables: the answers equal what the
result documents say, and each export is read back by the tool it is for (pycocotools, the
Label Studio SDK, the YOLO reader) with the same boxes."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fleet import Fleet, run_cli, wait_for_job
from tables import assert_tables_match

from framefleet.core.documents import ImageDocument, read_document
from framefleet.core.outputs import result_key
from framefleet.core.settings import Settings
from framefleet.core.storage import open_storage
from framefleet.exports import yolo
from framefleet.state.jobs import JobStore

pytestmark = pytest.mark.integration


def test_query_and_every_export_read_back_by_their_tools(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore, media_images: list[Path]
) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "cam1").mkdir(parents=True)
    (src / "cam2").mkdir()
    for n, path in enumerate(media_images[:8]):
        shutil.copy(path, src / f"cam{n % 2 + 1}" / path.name)
    (src / "cam2" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    fleet.start("w1")
    submitted = run_cli(settings, "submit", str(src), "--out", str(out))
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.splitlines()[0].strip()
    wait_for_job(job_store, job_id)
    dst = open_storage(str(out))
    items = [f"cam{n % 2 + 1}/{p.name}" for n, p in enumerate(media_images[:8])]
    assert_tables_match(dst, done=items, failed=["cam2/broken.jpg"])
    documents = {i: read_document(dst.read_bytes(result_key(i))) for i in items}
    assert all(isinstance(d, ImageDocument) for d in documents.values())

    # README's three questions, by job id (Redis) and by output folder
    per_class = Counter(
        str(n)
        for d in documents.values()
        for n in d.results.data["class_name"]  # type: ignore[union-attr]
    )
    got = run_cli(settings, "query", job_id, "--json",
                  "SELECT class_name, count(*) AS n FROM detections GROUP BY 1")  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert {r["class_name"]: r["n"] for r in map(json.loads, got.stdout.splitlines())} == per_class
    sure = sorted(
        i for i, d in documents.items()
        if any(s > 0.8 and n == "person" for s, n in zip(d.results.confidence, d.results.data["class_name"], strict=True))  # type: ignore[union-attr]
    )  # fmt: skip
    got = run_cli(settings, "query", str(out), "--csv",
                  "SELECT DISTINCT item FROM detections WHERE class_name = 'person' AND score > 0.8 ORDER BY item")  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert [row[0] for row in csv.reader(io.StringIO(got.stdout))][1:] == sure
    got = run_cli(settings, "query", str(out),
                  "SELECT split_part(item, '/', 1) AS camera, count(*) AS images, "
                  "sum(detections) AS boxes FROM images WHERE status = 'done' GROUP BY 1 ORDER BY 1")  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert "cam1" in got.stdout
    assert "2 row(s)" in got.stdout
    bad = run_cli(settings, "query", str(out), "SELECT nope FROM detections")
    assert bad.returncode == 3  # EXIT_CONFIG
    assert "DuckDB refused the query" in bad.stderr
    assert "nope" in bad.stderr

    # COCO: pycocotools loads the dataset and the results; the export scores 1.0 against itself
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    coco_dir = tmp_path / "coco"
    assert (
        run_cli(settings, "export", job_id, "--format", "coco", "--out", str(coco_dir)).returncode
        == 0
    )
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(coco_dir / "annotations" / "instances_default.json"))
        found = truth.loadRes(str(coco_dir / "results.json"))
        evaluation = COCOeval(truth, found, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert len(truth.getImgIds()) == len(items)
    assert len(truth.getAnnIds()) == sum(per_class.values())
    assert evaluation.stats[0] == pytest.approx(1.0)  # mAP@[.5:.95]

    # YOLO: the labels read back to the tables' boxes, to a pixel
    yolo_dir = tmp_path / "yolo"
    assert (
        run_cli(settings, "export", str(out), "--format", "yolo", "--out", str(yolo_dir)).returncode
        == 0
    )
    assert "names:" in (yolo_dir / "data.yaml").read_text()
    for item, document in documents.items():
        assert isinstance(document, ImageDocument)
        back = yolo.read(yolo_dir, item, document.width, document.height)
        assert [b[0] for b in back] == document.results.class_id.tolist()
        if back:
            np.testing.assert_allclose([b[1:] for b in back], document.results.xyxy, atol=1.0)

    # Label Studio: every prediction validates against the exported config with the SDK
    from label_studio_sdk.label_interface import LabelInterface

    ls_dir = tmp_path / "ls"
    subset = run_cli(settings, "export", job_id, "--format", "labelstudio", "--out", str(ls_dir),
                     "--where", "item LIKE 'cam1/%'", "--image-root", "/data/local-files/?d=photos")  # fmt: skip
    assert subset.returncode == 0, subset.stderr
    tasks = json.loads((ls_dir / "tasks.json").read_text())
    assert sorted(t["data"]["item"] for t in tasks) == sorted(
        i for i in items if i.startswith("cam1/")
    )
    interface = LabelInterface((ls_dir / "config.xml").read_text())
    for task in tasks:
        assert task["data"]["image"].startswith("/data/local-files/?d=photos/cam1/")
        (prediction,) = task["predictions"]
        assert interface.validate_prediction(prediction, return_errors=True) == []
        assert len(prediction["result"]) == len(documents[task["data"]["item"]].results)  # type: ignore[union-attr]

    # CSV: one row per box
    csv_dir = tmp_path / "csv"
    assert (
        run_cli(settings, "export", job_id, "--format", "csv", "--out", str(csv_dir)).returncode
        == 0
    )
    with (csv_dir / "detections.csv").open() as rows:
        assert sum(1 for _ in csv.DictReader(rows)) == sum(per_class.values())
    wrong = run_cli(
        settings, "export", job_id, "--format", "csv", "--out", str(csv_dir), "--where", "itemz = 1"
    )
    assert wrong.returncode == 3
    assert "--where 'itemz = 1'" in wrong.stderr
