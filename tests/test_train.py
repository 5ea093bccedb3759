"""framefleet train: the small CNN on scikit-learn's digits (made at test time), exported,
checked through cv2.dnn, registered, served by a real worker and scored by evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fleet import Fleet, wait_for_job
from learnfix import assert_readable_png, model_dir_with_shared
from learnsets import digits
from test_e2e import run_cli

from framefleet.core.registry import load_registry
from framefleet.core.settings import Settings
from framefleet.state.jobs import JobStore

DIGITS_PER_CLASS = 30
"""300 images, 75 held out."""

SERVED_PER_CLASS = 4
"""Images per class sent through the worker."""

STATED_ACCURACY = 0.9
"""What the CNN reaches on the held-out digits in 10 epochs (measured: 0.96 to 0.99)."""


@pytest.mark.integration
def test_cnn_trains_exports_serves_and_is_evaluated(
    settings: Settings, fleet: Fleet, job_store: JobStore, tmp_path: Path
) -> None:
    data = tmp_path / "digits"
    digits(data, per_class=DIGITS_PER_CLASS)
    learn = settings.with_(
        model_dir=model_dir_with_shared(tmp_path / "models"),
        models_file=tmp_path / "my-models.toml",
    )
    out = tmp_path / "cnn"
    trained = run_cli(
        learn, "train", "--data", str(data), "--out", str(out), "--name", "digits",
        "--epochs", "10",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    print(trained.stdout)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["held_out"] == 75
    assert metrics["holdout_accuracy"] >= STATED_ACCURACY
    assert metrics["parity"]["max_abs_diff"] <= 1e-4
    assert metrics["parity"]["items"] == 75
    assert_readable_png(out / "training_curve.png")
    spec = load_registry(learn.models_file).get("digits")
    assert (spec.family, spec.preprocess.input_wh) == ("classifier", (32, 32))

    # serve a few of each class (a job per image costs more than the CNN itself)
    few = tmp_path / "few"
    for label in range(10):
        (few / str(label)).mkdir(parents=True)
        for image in sorted((data / str(label)).iterdir())[:SERVED_PER_CLASS]:
            (few / str(label) / image.name).write_bytes(image.read_bytes())
    fleet.settings = learn
    fleet.start("cnn", "--models", "digits")
    served = run_cli(
        learn, "submit", str(few), "--out", str(tmp_path / "served"), "--model", "digits", "--wait"
    )
    assert served.returncode == 0, served.stderr
    job_id = served.stdout.splitlines()[0].strip()
    record = wait_for_job(job_store, job_id)
    assert (record.done, record.failed) == (10 * SERVED_PER_CLASS, 0)
    scored = run_cli(learn, "evaluate", "--job", job_id, "--out", str(tmp_path / "eval"))
    assert scored.returncode == 0, scored.stderr
    evaluation = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluation["accuracy"] >= STATED_ACCURACY
    assert evaluation["items"] == 10 * SERVED_PER_CLASS
    assert_readable_png(tmp_path / "eval" / "confusion_matrix.png")
