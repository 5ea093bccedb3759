"""`framefleet tune` on the shared images: a measured table over both engines, a recommendation
that is the fastest row it measured, and a settings file that Settings accepts."""

from __future__ import annotations

import subprocess
from pathlib import Path

from fleet import cli
from helpers import IMAGES_DIR, MODEL_DIR

from framefleet.core.settings import Settings


def test_tune_measures_both_engines_and_writes_the_fastest(tmp_path: Path) -> None:
    written = tmp_path / "tuned.env"
    cmd = cli("--model-dir", str(MODEL_DIR), "tune")
    cmd += ["--model", "fastestdet", str(IMAGES_DIR), "--sample", "8", "--budget", "20"]
    done = subprocess.run(
        [*cmd, "--write", str(written)], capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    rows = [line.split() for line in lines[1:] if line.startswith(("cv2.dnn", "onnxruntime"))]
    assert {row[0] for row in rows} == {"cv2.dnn", "onnxruntime"}  # the first layout has both
    rates = [float(row[-1]) for row in rows]
    assert all(rate > 0 for rate in rates)
    best = max(rates)
    summary = next(line for line in lines if line.startswith("fastest on 8 images"))
    recommended = float(summary.split(": ")[1].split()[0])
    assert recommended >= 0.95 * best  # the bound; it is the best row itself
    env = dict(
        line.split("=", 1) for line in written.read_text().splitlines() if not line.startswith("#")
    )
    assert env["FRAMEFLEET_MODEL"] == "fastestdet"
    settings = Settings.from_env(env)  # every value is one Settings accepts
    winner = next(row for row in rows if float(row[-1]) == best)
    assert settings.engine == winner[0]
    assert (settings.concurrency, settings.cv_threads) == (int(winner[1]), int(winner[3]))
    assert (settings.forward_batch, settings.batch_size) == (int(winner[4]), int(winner[5]))
