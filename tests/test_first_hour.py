"""The first hour of a new user (issue 16): every usual mistake gets one precise answer, through
the real CLI in child processes against the suite's real Redis (and real workers where needed)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from fleet import REPO, Fleet, cli, run_cli
from helpers import IMAGES_DIR

from framefleet.core.settings import Settings
from framefleet.state.jobs import JobStore

pytestmark = pytest.mark.integration

HORSES = IMAGES_DIR / "darknet_horses.jpg"
DOG = IMAGES_DIR / "darknet_dog.jpg"


def photos(folder: Path, *files: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


def test_unknown_model_names_the_option_and_close_names(settings: Settings, tmp_path: Path) -> None:
    photos(tmp_path / "in", DOG)
    result = run_cli(
        settings,
        "submit",
        str(tmp_path / "in"),
        "--out",
        str(tmp_path / "out"),
        "--model",
        "yolox_nano",
    )
    assert result.returncode == 3, result.stderr
    assert "did you mean yolox-nano?" in result.stderr
    assert "--models-file FILE" in result.stderr
    assert result.stderr.count("\n") == 1  # one line, no traceback


def test_dry_run_counts_tasks(settings: Settings, tmp_path: Path, job_store: JobStore) -> None:
    folder = photos(tmp_path / "in", DOG, HORSES, IMAGES_DIR / "coral_cat_720p.jpg")
    (folder / "clip.mp4").write_bytes(b"x")
    (folder / "notes.txt").write_text("not media")
    result = run_cli(
        settings,
        "submit",
        str(folder),
        "--out",
        str(tmp_path / "out"),
        "--dry-run",
        "--batch-size",
        "2",
    )
    assert result.returncode == 0, result.stderr
    # 3 images in batches of 2 (2 tasks) and one task for the video
    assert "would submit 4 items in 3 tasks, skipped 1 non-media keys" in result.stderr
    assert job_store.recent() == []


@pytest.mark.parametrize(
    ("files", "message"),
    [
        # an empty folder is not a missing one: exit 3, it says the folder is empty
        pytest.param({}, "it is empty", id="empty-folder"),
        # a folder of only other files: exit 3, how many files and what framefleet takes
        pytest.param({"a.txt": b"x", "b.csv": b"y"}, "2 files, none of them media", id="no-media"),
    ],
)
def test_input_without_media_is_one_clear_message(
    settings: Settings, tmp_path: Path, job_store: JobStore, files: dict[str, bytes], message: str
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    result = run_cli(settings, "submit", str(folder), "--out", str(tmp_path / "out"))
    assert result.returncode == 3, result.stderr
    assert message in result.stderr
    assert ".jpg" in result.stderr  # what it would have taken
    assert result.stderr.count("\n") == 1
    assert job_store.recent() == []  # no empty "done" job


def test_missing_input_folder_is_a_storage_error(settings: Settings, tmp_path: Path) -> None:
    result = run_cli(settings, "submit", str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    assert result.returncode == 4, result.stderr
    assert "does not exist" in result.stderr


def test_output_inside_the_input_is_refused(
    settings: Settings, tmp_path: Path, job_store: JobStore
) -> None:
    folder = photos(tmp_path / "photos", DOG)
    result = run_cli(settings, "submit", str(folder), "--out", str(folder / "results"))
    assert result.returncode == 3, result.stderr
    assert "lies inside the input" in result.stderr
    assert f"{folder}-results/" in result.stderr  # a place that works
    assert job_store.recent() == []


def test_jobs_and_models_tables(settings: Settings, tmp_path: Path) -> None:
    empty = run_cli(settings, "jobs")
    assert empty.returncode == 0
    assert "no jobs in Redis at" in empty.stderr
    folder = photos(tmp_path / "in", DOG)
    assert run_cli(settings, "submit", str(folder), "--out", str(tmp_path / "out")).returncode == 0
    table = run_cli(settings, "jobs").stdout.splitlines()
    assert table[0].split() == [
        "JOB",
        "STATUS",
        "DONE/TOTAL",
        "FAILED",
        "MODEL",
        "CREATED",
        "(UTC)",
        "INPUT",
    ]
    row = table[1].split()
    assert row[1:5] == ["running", "0/1", "0", "yolox-nano"]
    assert row[5] == time.strftime("%Y-%m-%d", time.gmtime())
    assert row[-1] == f"file://{folder}/"

    models = run_cli(settings, "models")
    assert models.returncode == 0, models.stderr
    lines = {line.split()[0].lstrip("*"): line for line in models.stdout.splitlines()[2:]}
    assert "verified" in lines["yunet"]  # the shared model files, sha256 checked
    other = run_cli(settings, "--model-dir", str(tmp_path / "empty-models"), "models").stdout
    assert (
        "missing detection/yolox_nano_416.onnx (downloads on first use)" in other
    )  # nothing there, nothing downloaded
    assert not (tmp_path / "empty-models").exists()


def test_ctrl_c_during_wait_detaches_with_a_hint(
    settings: Settings, tmp_path: Path, job_store: JobStore
) -> None:
    folder = photos(tmp_path / "in", DOG)
    cmd = cli("submit", str(folder), "--out", str(tmp_path / "out"), "--wait")
    proc = subprocess.Popen(
        cmd,
        env=Fleet(settings, REPO).env(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A suite started in the background by a shell (`bash .ci/run &`) inherits SIGINT
        # ignored, and so would the child: give it the default a terminal user has.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        job_id = proc.stdout.readline().strip()  # printed as soon as the job exists
        deadline = time.monotonic() + 60
        while job_store.recent() == [] or not job_store.get(job_id).listed:
            assert time.monotonic() < deadline, "the job was not recorded"
            time.sleep(0.1)
        time.sleep(0.5)  # inside the wait loop
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()  # reaps it and closes its pipes, however the test ends
    assert proc.returncode == 130, err
    assert f"framefleet status {job_id} --watch" in err
    assert f"framefleet cancel {job_id}" in err
    assert "Aborted!" not in err
    assert job_store.get(job_id).status.value == "running"  # the job goes on


def test_flower_on_a_busy_port_suggests_a_free_one(settings: Settings) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(settings, "flower", "--port", str(port), timeout_s=60)
    assert result.returncode == 3, result.stderr
    assert f"port {port} on 127.0.0.1 is taken" in result.stderr
    suggested = int(result.stderr.split("--port ")[1].split()[0])
    assert suggested != port
    assert "Traceback" not in result.stderr
    with socket.socket() as probe:  # the suggestion was free
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", suggested))


def test_status_json_of_single_file_job(
    settings: Settings, tmp_path: Path, job_store: JobStore
) -> None:
    folder = photos(tmp_path / "in", DOG, HORSES)
    result = run_cli(settings, "submit", str(folder / HORSES.name), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "submitted 1 items in 1 tasks" in result.stderr
    job_id = result.stdout.split()[0]
    record = json.loads(run_cli(settings, "status", job_id, "--json").stdout)
    assert (record["input"], record["total"]) == (f"file://{folder}/", 1)


def wait_for_text(
    path: Path, text: str, proc: subprocess.Popen[str], timeout_s: float = 60
) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in path.read_text():
        assert proc.poll() is None, path.read_text()
        assert time.monotonic() < deadline, path.read_text()
        time.sleep(0.2)


def test_with_a_real_worker_single_file_cancel_and_no_live_worker(
    settings: Settings, fleet: Fleet, tmp_path: Path, job_store: JobStore, media_images: list[Path]
) -> None:
    fleet.start("w1")  # serves yolox-nano only

    # One file is a valid input; its outputs are named as for that file in a folder.
    one = run_cli(settings, "submit", str(HORSES), "--out", str(tmp_path / "one"), "--wait")
    assert one.returncode == 0, one.stderr
    assert (tmp_path / "one" / "darknet_horses.jpg").is_file()
    assert json.loads((tmp_path / "one" / "darknet_horses.jpg.json").read_text())["kind"] == "image"
    assert "no live worker" not in one.stderr
    done_id = one.stdout.split()[0]

    # A finished job is final: cancel says so, exits 3 and changes nothing.
    again = run_cli(settings, "cancel", done_id)
    assert again.returncode == 3, again.stderr
    assert f"job {done_id} already ended (done: 1 done, 0 failed, 0 cancelled)" in again.stderr
    assert job_store.get(done_id).status.value == "done"

    # A job for a model no live worker serves: submit and status name the queue and the fix.
    folder = photos(tmp_path / "faces", DOG, HORSES, IMAGES_DIR / "coral_face.jpg")
    faces = run_cli(
        settings, "submit", str(folder), "--out", str(tmp_path / "f1"), "--model", "yunet"
    )
    assert faces.returncode == 0, faces.stderr
    for text in (
        "no live worker consumes queue framefleet.yunet",
        "framefleet worker --models yunet",
        "(framefleet.yolox-nano)",
    ):
        assert text in faces.stderr
    status = run_cli(settings, "status", faces.stdout.split()[0])
    assert "no live worker consumes queue framefleet.yunet" in status.stderr

    # --wait says so too instead of waiting silently; a cancel ends the wait (exit 1).
    log = tmp_path / "wait.log"
    with log.open("w") as err:
        cmd = cli(
            "submit", str(folder), "--out", str(tmp_path / "f2"), "--model", "yunet", "--wait"
        )
        proc = subprocess.Popen(
            cmd,
            env=Fleet(settings, REPO).env(),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        try:
            wait_for_text(log, "no live worker consumes queue framefleet.yunet", proc)
            waiting_id = job_store.recent(1)[0].job_id
            cancel = run_cli(settings, "cancel", waiting_id)
            assert cancel.returncode == 0, cancel.stderr
            assert f"cancelled {waiting_id}: 0 done, 0 failed, 3 cancelled" in cancel.stdout
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 1, log.read_text()
    assert "0 done, 0 failed, 3 cancelled" in out

    # Cancelling a running job: exact counts that stop moving, and its summary.
    many = tmp_path / "many"
    for i in range(3):
        photos(many / f"copy{i}", *media_images)
    total = 3 * len(media_images)
    run = run_cli(settings, "submit", str(many), "--out", str(tmp_path / "m"), "--batch-size", "1")
    job_id = run.stdout.split()[0]
    deadline = time.monotonic() + 120
    while job_store.get(job_id).done < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cancel = run_cli(settings, "cancel", job_id)
    assert cancel.returncode == 0, cancel.stderr
    first = json.loads(run_cli(settings, "status", job_id, "--json").stdout)
    time.sleep(2)  # the task in flight ends meanwhile; its outcome is not counted
    second = json.loads(run_cli(settings, "status", job_id, "--json").stdout)
    assert first == second  # counts, elapsed time and rate all stopped
    assert first["status"] == "cancelled"
    assert first["done"] >= 1
    assert first["cancelled"] >= 1
    assert first["done"] + first["failed"] + first["cancelled"] == first["total"] == total
    assert "report.html" in cancel.stderr
    assert (tmp_path / "m" / "_framefleet" / "report.html").is_file()
    summary = json.loads((tmp_path / "m" / "_framefleet" / "summary.json").read_text())
    assert (summary["status"], summary["done"], summary["cancelled"]) == (
        "cancelled",
        first["done"],
        first["cancelled"],
    )
    text = run_cli(settings, "status", job_id).stdout
    assert f"{first['cancelled']} cancelled" in text
    assert "pending" not in text
