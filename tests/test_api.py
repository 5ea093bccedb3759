"""The inference library as plain Python and `framefleet run`: no Celery, no Redis, and the same
result documents as the fleet's."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fleet import REPO, Fleet, cli, wait_for_job
from helpers import IMAGES_DIR, MODEL_DIR, read_image
from tables import assert_tables_match

from framefleet.core.documents import ImageDocument, read_document
from framefleet.core.errors import DocumentError, ImageDecodeError, UnknownModelError
from framefleet.core.outputs import annotated_key, report_key, result_key
from framefleet.core.settings import Settings
from framefleet.core.storage import open_storage
from framefleet.dataset import open_results
from framefleet.inference import analyse_image, load_model
from framefleet.queue import create_app
from framefleet.state.jobs import JobStore
from producer.submit import submit

VOLATILE = ("timings_ms", "worker", "created_at")
"""Document fields that differ between two runs of the same model on the same input."""


def stable(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in VOLATILE}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEFLEET_")}
    return subprocess.run(
        cli("--model-dir", str(MODEL_DIR), *args),
        env={**base, **(env or {})},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_load_model_and_call_on_array_or_path() -> None:
    model = load_model("yolox-nano", model_dir=MODEL_DIR, download=False)
    image = read_image("darknet_dog.jpg")
    from_array = model(image)
    from_path = model(IMAGES_DIR / "darknet_dog.jpg")
    assert sorted(from_array.data["class_name"].tolist()) == ["bicycle", "car", "dog"]
    np.testing.assert_array_equal(from_array.xyxy, from_path.xyxy)
    annotated = model.annotate(image, from_array)
    assert annotated.shape == image.shape
    assert not np.array_equal(annotated, image)
    assert model.info.engine == "cv2.dnn"
    assert len(model.info.sha256) == 64


def test_document_round_trip() -> None:
    model = load_model("yunet", model_dir=MODEL_DIR, download=False)
    doc = analyse_image(read_image("coral_face.jpg"), model, source="file:///faces/coral_face.jpg")
    assert len(doc.results) == 4
    assert doc.results.landmarks is not None
    again = read_document(json.dumps(doc.to_json()))
    assert isinstance(again, ImageDocument)
    assert again.to_json() == doc.to_json()
    assert set(doc.timings_ms) == {"preprocess", "infer", "postprocess"}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        pytest.param(lambda d: d.update(schema=99), "schema 99", id="other-schema"),
        pytest.param(lambda d: d.update(kind="audio"), "got 'audio'", id="unknown-kind"),
        pytest.param(lambda d: d.pop("image"), "malformed image document", id="missing-field"),
        pytest.param(
            lambda d: d["results"].update(xyxy="x"), "malformed image document", id="bad-results"
        ),
    ],
)
def test_malformed_documents_are_refused(mutate, message) -> None:
    model = load_model("yolox-nano", model_dir=MODEL_DIR, download=False)
    document = analyse_image(read_image("darknet_dog.jpg"), model, source="x").to_json()
    mutate(document)
    with pytest.raises(DocumentError, match=message):
        read_document(document)


def test_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match="yolox-nano"):
        load_model("yolox_nano", model_dir=MODEL_DIR, download=False)
    model = load_model(model_dir=MODEL_DIR, download=False)
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(ImageDecodeError, match=r"text\.jpg"):
        model(tmp_path / "text.jpg")
    with pytest.raises(ImageDecodeError, match=r"missing\.jpg"):
        model(tmp_path / "missing.jpg")


def test_run_a_folder_with_no_redis(tmp_path: Path, media_images: list[Path]) -> None:
    src = tmp_path / "in"
    (src / "nested").mkdir(parents=True)
    for path in media_images[:3]:
        (src / "nested" / path.name).write_bytes(path.read_bytes())
    (src / "broken.jpg").write_bytes(b"<html>not a jpeg</html>")
    (src / "notes.txt").write_text("skipped")
    # Nothing listens on port 1: any Redis use would fail loudly.
    result = run_cli(
        "run",
        str(src),
        "--out",
        str(tmp_path / "out"),
        "--processes",
        "2",
        env={"FRAMEFLEET_REDIS_URL": "redis://127.0.0.1:1/0"},
    )
    assert result.returncode == 1, result.stderr  # one item failed
    assert "3 done, 1 failed" in result.stderr
    assert "FAILED  broken.jpg: ImageDecodeError" in result.stderr
    out = open_storage(str(tmp_path / "out"))
    for path in media_images[:3]:
        key = f"nested/{path.name}"
        assert out.exists(annotated_key(key))
        doc = read_document(out.read_bytes(result_key(key)))
        assert doc.source == open_storage(str(src)).uri_for(key)
    failures = [
        json.loads(line) for line in out.read_bytes(report_key("failures.jsonl")).splitlines()
    ]
    assert [f["item"] for f in failures] == ["broken.jpg"]
    assert not out.exists(result_key("notes.txt"))


def test_run_a_single_file_and_refuse_an_empty_folder(tmp_path: Path) -> None:
    ok = run_cli("run", str(IMAGES_DIR / "darknet_dog.jpg"), "--out", str(tmp_path / "one"))
    assert ok.returncode == 0, ok.stderr
    assert "ok      darknet_dog.jpg  1 bicycle, 1 car, 1 dog" in ok.stdout
    assert (tmp_path / "one" / "darknet_dog.jpg.json").is_file()
    (tmp_path / "empty").mkdir()
    empty = run_cli("run", str(tmp_path / "empty"), "--out", str(tmp_path / "o"))
    assert empty.returncode == 3
    assert "no image or video under" in empty.stderr


@pytest.mark.integration
def test_api_run_and_fleet_write_the_same_documents(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore, media_images: list[Path]
) -> None:
    """Every shared image through the fleet, `framefleet run` and the API: one document each,
    identical but for timings, worker and creation time."""
    src = open_storage(str(IMAGES_DIR))
    fleet.start("w1")
    done = submit(
        settings, create_app(settings), str(IMAGES_DIR), str(tmp_path / "fleet"), "yolox-nano"
    )
    record = wait_for_job(job_store, done.job_id or "")
    assert (record.done, record.failed) == (len(media_images), 0)
    ran = run_cli("run", str(IMAGES_DIR), "--out", str(tmp_path / "run"), "--quiet")
    assert ran.returncode == 0, ran.stderr
    model = load_model("yolox-nano", model_dir=MODEL_DIR, download=False)
    fleet_out, run_out = open_storage(str(tmp_path / "fleet")), open_storage(str(tmp_path / "run"))
    for path in media_images:
        from_fleet = json.loads(fleet_out.read_bytes(result_key(path.name)))
        from_run = json.loads(run_out.read_bytes(result_key(path.name)))
        from_api = analyse_image(read_image(path.name), model, src.uri_for(path.name)).to_json()
        assert stable(from_fleet) == stable(from_run) == stable(from_api), path.name
        assert fleet_out.read_bytes(annotated_key(path.name)) == run_out.read_bytes(
            annotated_key(path.name)
        )
    # ...and the same results tables (run writes and compacts them as a fleet job does)
    tables = {}
    for name, out in (("fleet", fleet_out), ("run", run_out)):
        assert_tables_match(out, done=[p.name for p in media_images])
        with open_results(out) as results:
            tables[name] = results.sql(
                "SELECT item, rank, class_id, round(score, 3), round(x1, 1), round(y2, 1) "
                "FROM detections ORDER BY item, rank"
            ).fetchall()
    assert tables["fleet"] == tables["run"]
