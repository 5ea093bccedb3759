"""Flower against a running job, looked at in a real headless Chromium: both workers listed,
the job's tasks with readable arguments, their item counts, and the task whose items failed
shown as FAILURE."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from browser import screenshot
from fleet import Fleet, cli, wait_for_job
from test_e2e import upload

from framefleet.core.settings import Settings
from framefleet.core.storage import open_storage
from framefleet.queue import create_app
from framefleet.services.ports import free_port
from framefleet.services.processes import LoggedProcess
from framefleet.state.jobs import JobStore
from producer.submit import submit

pytestmark = pytest.mark.integration


def wait_for_flower(flower: LoggedProcess, url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthcheck", timeout=5) as response:
                if response.read() == b"OK":
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        if time.monotonic() > deadline or flower.process.poll() is not None:
            raise AssertionError(f"Flower did not answer:\n{flower.log()}")
        time.sleep(0.3)


def flower_tasks(url: str) -> dict[str, dict[str, object]]:
    with urllib.request.urlopen(f"{url}/api/tasks", timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def test_flower_shows_workers_and_the_jobs_tasks_in_a_browser(
    settings: Settings,
    fleet: Fleet,
    tmp_path: Path,
    job_store: JobStore,
    media_images: list[Path],
    page,
) -> None:
    settings = settings.with_(batch_size=2)
    fleet.settings = settings
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = cli("flower", "--port", str(port))
    env = {**fleet.env(), "FLOWER_UNAUTHENTICATED_API": "true"}  # the test reads /api/tasks too
    flower = LoggedProcess("flower", cmd, env, tmp_path / "flower.log")
    try:
        wait_for_flower(flower, url)  # before the workers: Flower sees their events from the start
        fleet.start("alpha")
        fleet.start("beta")
        # Workers send task events only while a monitor asks (Flower broadcasts enable_events
        # every 5 s); ask now, as Flower would, so the job's first tasks are not missed.
        create_app(settings).control.enable_events()
        src = open_storage(str(tmp_path / "in"))
        upload(src, media_images[:4])
        src.write_bytes("zz-broken-1.jpg", b"not a jpeg")  # sorted last: one batch, both fail
        src.write_bytes("zz-broken-2.jpg", b"")
        done = submit(settings, create_app(settings), src.uri, str(tmp_path / "out"), "yolox-nano")
        job_id = done.job_id or ""
        record = wait_for_job(job_store, job_id)
        assert (record.done, record.failed) == (4, 2)

        # Flower's own record of the tasks: readable arguments, counts as results, no URIs.
        # The last outcome is recorded before its task returns (and releases its lease), so wait
        # for the tasks' final states, not just for three tasks.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            tasks = flower_tasks(url)
            if len(tasks) == 3 and all(
                t["state"] in ("SUCCESS", "FAILURE") for t in tasks.values()
            ):
                break
            time.sleep(0.5)
        states = sorted(str(t["state"]) for t in tasks.values())
        assert states == ["FAILURE", "SUCCESS", "SUCCESS"], tasks
        for task in tasks.values():
            assert str(task["args"]).startswith("2 images, yolox-nano, job " + job_id)
            assert str(tmp_path) not in json.dumps(task)  # no input or output URI
        failed = next(t for t in tasks.values() if t["state"] == "FAILURE")
        assert "ItemsFailed" in str(failed["exception"])
        assert "2 of 2 items failed" in str(failed["exception"])
        assert "zz-broken-1.jpg: ImageDecodeError" in str(failed["exception"])
        ok = next(t for t in tasks.values() if t["state"] == "SUCCESS")
        assert str(ok["result"]).startswith("{'done': 2, 'failed': 0, 'retrying': 0")

        page.goto(f"{url}/workers")
        table = page.locator("#workers-table")
        for name in ("alpha@", "beta@"):
            table.get_by_text(name).first.wait_for(timeout=30_000)
        screenshot(page, "flower-workers")

        page.goto(f"{url}/tasks")
        rows = page.locator("#tasks-table tbody tr")
        rows.filter(has_text="FAILURE").first.wait_for(timeout=30_000)
        screenshot(page, "flower-tasks")
        assert rows.filter(has_text=job_id).count() == 3
        assert rows.filter(has_text="SUCCESS").count() == 2
        assert "framefleet.image_batch" in rows.first.inner_text()
    finally:
        flower.stop()
