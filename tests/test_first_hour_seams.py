"""The seams between a new user's first steps (issue 30), through the real CLI in child processes
against the suite's real Redis and SeaweedFS."""

from __future__ import annotations

from pathlib import Path

import pytest
from fleet import run_cli
from helpers import IMAGES_DIR

from framefleet.core.settings import Settings
from framefleet.state.jobs import JobStore

pytestmark = pytest.mark.integration

DOG = IMAGES_DIR / "darknet_dog.jpg"


def test_a_missing_output_bucket_is_refused_at_submit(
    settings: Settings, tmp_path: Path, job_store: JobStore, s3_server: object
) -> None:
    # Issue 30, item 4: it was found item by item (every image inferred, then failed with
    # BucketNotFound, exit 0); now submit says so before any work, with exit 4, and records no job.
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / DOG.name).write_bytes(DOG.read_bytes())
    result = run_cli(settings, "submit", str(photos), "--out", "s3://nobucket-out/o/")
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert "bucket 'nobucket-out' does not exist" in result.stderr
    assert "create it or check the bucket name" in result.stderr
    assert "s3://nobucket-out/o/" in result.stderr
    assert job_store.recent() == []
