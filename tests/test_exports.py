"""`framefleet query` and `framefleet export` on a real job's tables: the answers equal what the
result documents say, and each export is read back by the tool it is for (pycocotools, the YOLO
reader) with the same boxes; Datumaro and the Label Studio SDK read them in `test_interop`."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fleet import REPO, Fleet, run_cli, wait_for_job
from tables import assert_tables_match

from framefleet.core.documents import ImageDocument, read_document
from framefleet.core.outputs import result_key
from framefleet.core.settings import Settings
from framefleet.core.storage import open_storage
from framefleet.dataset import open_results
from framefleet.exports import yolo
from framefleet.state.jobs import JobStore

pytestmark = pytest.mark.integration


def readme_block(marker: str, lang: str) -> str:
    """The ``lang`` block after README's ``<!-- marker`` comment."""
    found = re.search(
        rf"<!-- {marker}:.*?\n```{lang}\n(.*?)\n```", (REPO / "README.md").read_text(), re.S
    )
    assert found, f"README.md lost its {marker} block"
    return found.group(1)


def readme_queries() -> list[tuple[str, str]]:
    """README's ``framefleet query TARGET "SQL"`` lines: (target, SQL)."""
    return [
        (line.split()[2], line.split(" ", 3)[3].strip().strip('"'))
        for line in readme_block("queries", "bash").splitlines()
    ]


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

    # README's three questions, as written there: by job id (Redis) and by output folder
    per_class = Counter(
        str(n)
        for d in documents.values()
        for n in d.results.data["class_name"]  # type: ignore[union-attr]
    )
    sure = sorted(
        i
        for i, d in documents.items()
        if any(
            s > 0.8 and n == "person"
            for s, n in zip(d.results.confidence, d.results.data["class_name"], strict=True)
        )  # type: ignore[union-attr]
    )
    questions = readme_queries()
    assert [target for target, _ in questions] == ['"$job"', "./results", '"$job"']
    answers = []
    for target, sql in questions:
        got = run_cli(settings, "query", job_id if target == '"$job"' else str(out), "--csv", sql)
        assert got.returncode == 0, got.stderr
        answers.append(list(csv.reader(io.StringIO(got.stdout)))[1:])
    assert {name: int(n) for name, n in answers[0]} == per_class
    assert [row[0] for row in answers[1]] == sure
    per_folder = {row[0]: (int(row[1]), int(row[2])) for row in answers[2]}
    assert per_folder == {
        cam: (
            sum(1 for i in items if i.startswith(cam)),
            sum(len(d.results) for i, d in documents.items() if i.startswith(cam)),
        )  # type: ignore[union-attr]
        for cam in ("cam1", "cam2")
    }
    shown = run_cli(settings, "query", str(out), questions[2][1])
    assert "2 row(s)" in shown.stdout, shown.stderr
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

    # Label Studio: a subset, with the image URLs Label Studio loads (the SDK's validation of
    # each prediction runs in test_interop, where the SDK is installed)
    ls_dir = tmp_path / "ls"
    subset = run_cli(settings, "export", job_id, "--format", "labelstudio", "--out", str(ls_dir),
                     "--where", "item LIKE 'cam1/%'", "--image-root", "/data/local-files/?d=photos")  # fmt: skip
    assert subset.returncode == 0, subset.stderr
    tasks = json.loads((ls_dir / "tasks.json").read_text())
    assert sorted(t["data"]["item"] for t in tasks) == sorted(
        i for i in items if i.startswith("cam1/")
    )
    for task in tasks:
        assert task["data"]["image"].startswith("/data/local-files/?d=photos/cam1/")
        (prediction,) = task["predictions"]
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


def test_readme_reads_the_tables_from_a_folder_and_from_s3(
    s3_server, tmp_path: Path, media_images: list[Path]
) -> None:
    """README's Python block, as written, on tables in ./results and in s3://results/run1/."""
    from helpers import MODEL_DIR

    from framefleet.core.tables import Rows
    from framefleet.dataset import compact, write_part
    from framefleet.inference import load_model
    from framefleet.inference.pipeline import process_image

    model = load_model("yolox-nano", model_dir=MODEL_DIR, download=False)
    src = open_storage(str(media_images[0].parent))
    local = open_storage(str(tmp_path / "results"))
    rows = Rows("readme-b0000000", "readme")
    for path in media_images[:4]:
        result = process_image(path.name, src, local, model)
        assert result.document is not None
        rows.add_document(path.name, result.document)
    write_part(local, rows)
    compact(local)
    s3_server.create_bucket("results")
    remote = open_storage("s3://results/run1/")
    for obj in remote.list("_framefleet/results/"):  # another test's job may have written there
        remote.delete(obj.key)
    for obj in local.list("_framefleet/results/"):
        remote.write_bytes(obj.key, local.read_bytes(obj.key))
    with open_results(local) as results:
        want = sorted(
            results.sql("SELECT class_name, count(*) FROM detections GROUP BY 1").fetchall()
        )
    done = subprocess.run(
        [sys.executable, "-c", readme_block("tables", "python")],
        cwd=tmp_path,
        env={**os.environ, **s3_server.env()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(eval(done.stdout.strip())) == want
