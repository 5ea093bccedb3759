"""The throughput benchmark's short mode runs end to end and prints every row of its table.

Speed targets live in the benchmark's own figures (measured against limits in the same run),
never in assertions here: this only proves the one documented command works on a fresh machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

ROWS = [
    "local limit, cv2.dnn (2 plain processes)",
    "framefleet local, cv2.dnn",
    "S3 limit, cv2.dnn (2 plain processes)",
    "framefleet S3, cv2.dnn",
    "local limit, onnxruntime (2 plain processes)",
    "framefleet local, onnxruntime",
    "S3 limit, onnxruntime (2 plain processes)",
    "framefleet S3, onnxruntime",
    "naive: tutorial in Celery, cv2.dnn, local",
    "SeaweedFS CPU during framefleet S3 on cv2.dnn",
    "onnxruntime local limit / cv2.dnn local limit",
    "framefleet / naive",
    "producer: 2000 keys at",
    "producer: 10000 keys at",
]


@pytest.mark.integration
def test_benchmark_short_mode_prints_the_whole_table(s3_server) -> None:
    # s3_server: the session's SeaweedFS fixture installs/finds `weed` the same way CI does.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.throughput", "--short"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout
    for row in ROWS:
        assert row in table, (row, table)
    # each framefleet row has a ratio, p50/p95 and a peak RSS figure
    fleet_rows = [
        line
        for line in table.splitlines()
        if line.startswith(("framefleet local", "framefleet S3"))
    ]
    assert len(fleet_rows) == 4
    assert all(" of limit " in line and " MB" in line for line in fleet_rows), fleet_rows


@pytest.mark.slow
def test_follow_lag_benchmark_prints_its_table(s3_server) -> None:
    # A small run of the one documented command: lag rows for both stores, memory rows.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "benchmarks.follow_lag", "--images", "6", "--every", "0.3"]
    cmd += ["--keys", "500", "--ticks", "8"]
    done = subprocess.run(
        cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=280, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    lags = [line for line in lines if " lag  --interval 1s " in line]
    assert [line.split()[0] for line in lags] == ["local", "S3"], done.stdout
    assert all(" p50 " in line and " p95 " in line for line in lags), lags
    memory = [line for line in lines if line.startswith("memory  tick")]
    assert len(memory) == 3, done.stdout  # ticks 2, 4 and 8
