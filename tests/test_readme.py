"""The README checked against what framefleet does, so the two cannot drift apart.

Its "Using it on your own data" block runs as it stands in a copy of the checkout (a fresh clone:
tracked and new files, no virtualenv) with ``../shared`` beside it; only the Redis address is
swapped for the suite's own Redis. The documents that run writes are checked against the README's
result schema, its output-naming table against `annotated_key`/`result_key`, and its test time
against ``scripts/test``'s.

The default run uses the suite's virtualenv for the two install lines; the ``slow`` variant runs
them too (a new virtualenv and ``pip install '.[worker,monitor]'``, about two minutes).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fleet import REPO
from helpers import IMAGES_DIR, MEDIA_DIR, SHARED

from framefleet.core.outputs import annotated_key, result_key

pytestmark = pytest.mark.integration

MARKER = "<!-- own-data:"
README_REDIS = "FRAMEFLEET_REDIS_URL=redis://127.0.0.1:6379/0"
INSTALL_LINES = ("python3 -m venv ", "pip install ")
PHOTOS = (
    IMAGES_DIR / "darknet_dog.jpg",
    IMAGES_DIR / "darknet_horses.jpg",
    IMAGES_DIR / "coral_face.jpg",
    MEDIA_DIR / "video" / "intel_person-bicycle-car-detection.gif",  # 41 frames
)


def readme() -> str:
    return (REPO / "README.md").read_text()


def own_data_block() -> str:
    """The bash block that follows the own-data marker in README.md."""
    match = re.search(re.escape(MARKER) + r".*?\n```bash\n(.*?)\n```", readme(), re.S)
    assert match, "README.md lost its own-data block (the marker comment before ```bash)"
    return match.group(1)


def fresh_clone(tmp: Path) -> Path:
    """A copy of the checkout's tracked and new files, ``../shared`` beside it, and ./photos."""
    clone = tmp / "clone"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in files:
        if name.startswith(".venv") or not (REPO / name).is_file():
            continue
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, clone / name)
    (tmp / "shared").symlink_to(SHARED.resolve())
    (clone / "photos").mkdir()
    for path in PHOTOS:
        shutil.copy2(path, clone / "photos" / path.name)
    return clone


def run_block(
    tmp: Path, redis_url: str, install: bool, timeout_s: float = 280
) -> subprocess.CompletedProcess[str]:
    block = own_data_block()
    assert README_REDIS in block
    lines = block.replace(README_REDIS, f"FRAMEFLEET_REDIS_URL={redis_url}").splitlines()
    if not install:
        lines = [line for line in lines if not line.startswith(INSTALL_LINES)]
    return run_bash(fresh_clone(tmp), lines, install=install, timeout_s=timeout_s)


def run_bash(
    clone: Path,
    lines: list[str],
    install: bool = False,
    timeout_s: float = 280,
    env_extra: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """README lines as one bash script in ``clone``, with this venv on PATH unless ``install``;
    stdout and stderr together."""
    # -x echoes each command; the trap stops the background workers however the block ends.
    script = "\n".join(
        ["set -euxo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT", *lines]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FRAMEFLEET_", "VIRTUAL_ENV"))}
    venv_bin = str(Path(sys.executable).parent)
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin]
    env["PATH"] = os.pathsep.join(path if install else [venv_bin, *path])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(env_extra or {})
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def documented_image_example() -> dict:
    """The image document of the README's "Result schema" section."""
    match = re.search(r"### Result schema.*?```json\n(.*?)\n```", readme(), re.S)
    assert match, "README.md lost its result-schema example"
    example = re.sub(r'"[0-9a-f]+…"', '""', match.group(1))  # the shortened sha256
    return json.loads(example)


def check_outcome(result: subprocess.CompletedProcess[str], clone: Path) -> None:
    out = result.stdout
    assert result.returncode == 0, out[-6000:]
    for model in ("yolox-nano", "yunet"):
        assert re.search(rf"{model}\s+\S+\s+verified", out), out[-6000:]
    assert "would submit 4 items in 2 tasks" in out
    assert re.search(r"job\s+\S+\s+\(done\)", out), out[-6000:]
    assert re.search(r"^JOB\s+STATUS", out, re.M)  # the jobs table
    results = clone / "results"
    for path in PHOTOS:
        video = path.suffix == ".gif"
        assert (results / annotated_key(path.name, video=video)).is_file(), path.name
        assert (results / result_key(path.name)).is_file(), path.name
    assert (results / "_framefleet" / "summary.json").is_file()

    # The documents hold what the README's schema says, no more and no less.
    example = documented_image_example()
    image = json.loads((results / result_key("darknet_dog.jpg")).read_text())
    assert set(image) == set(example)
    assert set(image["timings_ms"]) == set(example["timings_ms"])
    assert set(image["model"]) >= set(example["model"])
    video = json.loads((results / result_key(PHOTOS[-1].name)).read_text())
    schema = readme()[readme().index("### Result schema") :]
    undocumented = [key for key in video if f'"{key}"' not in schema]
    assert not undocumented, f"video document fields missing from README: {undocumented}"


def section_blocks(heading: str, language: str) -> list[str]:
    """The ``language`` code blocks of README's section ``heading``, in order."""
    section = readme().split(heading, 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)\n```", section, re.S)


def test_readme_try_a_model_blocks_run_as_written(tmp_path: Path) -> None:
    """ "Try a model first": the three `run` lines and the Python block, as they stand."""
    clone = fresh_clone(tmp_path)
    shutil.copy2(PHOTOS[0], clone / "photo.jpg")
    bash, python = (
        section_blocks("## Try a model first", "bash"),
        section_blocks("## Try a model first", "python"),
    )
    ran = run_bash(clone, bash[0].splitlines(), timeout_s=280)
    assert ran.returncode == 0, ran.stdout[-6000:]
    results = clone / "results"
    for name in ("photo.jpg", "darknet_dog.jpg", PHOTOS[0].name):
        assert (results / result_key(name)).is_file(), name
    assert json.loads((results / result_key("photo.jpg")).read_text())["model"]["name"] == "yunet"
    api = subprocess.run(
        [sys.executable, "-c", python[0]], cwd=clone, capture_output=True, text=True, timeout=120
    )
    assert api.returncode == 0, api.stderr
    assert "dog" in api.stdout


@pytest.mark.timeout(600)
def test_readme_finetune_block_runs_as_written(redis_url: str, tmp_path: Path) -> None:
    """The finetune example, as it stands: link the models, start the feature worker, fine-tune
    on the fleet, serve the new model, submit to it (issue 30, item 3: it used to fail after
    every epoch on a model directory without the base)."""
    from learnsets import shapes

    clone = fresh_clone(tmp_path)
    shapes(clone / "labelled", per_class=12)
    shutil.copytree(clone / "labelled" / "circle", clone / "new-photos")
    block = re.search(r"<!-- finetune example:.*?-->\n```sh\n(.*?)\n```", readme(), re.S)
    assert block, "README.md lost its finetune example (the marker comment before ```sh)"
    ran = run_bash(
        clone,
        block.group(1).splitlines(),
        timeout_s=580,
        env_extra={"FRAMEFLEET_REDIS_URL": redis_url},
    )
    assert ran.returncode == 0, ran.stdout[-6000:]
    assert "registered pets" in ran.stdout
    out = clone / "pets-out"
    documents = [p for p in out.rglob("*.json") if "_framefleet" not in p.parts]
    assert len(documents) == 12
    top = [json.loads(p.read_text())["results"]["data"]["class_name"][0] for p in documents]
    assert top.count("circle") >= 10, top


def test_readme_own_data_block_runs_as_written(redis_url: str, tmp_path: Path) -> None:
    result = run_block(tmp_path, redis_url, install=False)
    check_outcome(result, tmp_path / "clone")


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_readme_own_data_block_with_its_install_lines(redis_url: str, tmp_path: Path) -> None:
    result = run_block(tmp_path, redis_url, install=True, timeout_s=880)
    check_outcome(result, tmp_path / "clone")
    assert (tmp_path / "clone" / ".venv" / "bin" / "framefleet").is_file()
    # Issue 30, item 1: after that `pip install .`, scripts/demo in the same clone exited 6 (the
    # installed copy found no ../shared, and no Lua library either): bootstrap now sees the
    # copy is not the clone's and installs it editable again, and the demo runs.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FRAMEFLEET_", "VIRTUAL_ENV"))}
    demo = subprocess.run(
        ["scripts/demo"], cwd=tmp_path / "clone", env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]


def test_readme_output_naming_table_is_the_rule() -> None:
    table = readme().split("<!-- naming: input | annotated | document -->", 1)[1]
    rows = re.findall(
        r"^\| `([^`]+)` \| `([^`]+)` \| `([^`]+)` \|$", table.split("\n\n", 1)[0], re.M
    )
    assert len(rows) >= 5
    for item, annotated, document in rows:
        video = item.lower().endswith((".mp4", ".gif", ".mkv"))
        assert annotated_key(item, video=video) == annotated, item
        assert result_key(item) == document, item


def test_readme_and_scripts_test_give_one_test_time() -> None:
    readme_time = re.search(
        r"scripts/test\s+# ruff, mypy, pytest \(what CI runs; ~(\d+) min\)", readme()
    )
    script_time = re.search(
        r"everything \(about (\d+) minutes", (REPO / "scripts" / "test").read_text()
    )
    assert readme_time, "README's Development block lost its test time"
    assert script_time, "scripts/test lost its test time"
    assert readme_time.group(1) == script_time.group(1)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_scripts_demo_installs_only_what_the_demo_runs(tmp_path: Path) -> None:
    # Issue 30, item 11: scripts/demo installed the dev extra (PyTorch, playwright, Chromium:
    # 2.3 GB) to show one job. In a fresh clone it now installs the demo extra only, and runs.
    clone = fresh_clone(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FRAMEFLEET_", "VIRTUAL_ENV"))}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv_bin)
    demo = subprocess.run(
        ["scripts/demo"], cwd=clone, env=env, capture_output=True, text=True, timeout=1400
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "PyTorch not installed (the demo needs none)" in demo.stdout
    site = next((clone / ".venv" / "lib").glob("python3*/site-packages"))
    assert not (site / "torch").exists()
    assert not (site / "playwright").exists()
    size = sum(f.stat().st_size for f in (clone / ".venv").rglob("*") if f.is_file())
    print(f"demo venv: {size / 1e9:.2f} GB")
    # 1.14 GB measured: pyarrow and DuckDB (results tables), OpenCV, PyAV, SciPy (supervision's
    # tracker), onnx; the dev venv is 2.6 GB
    assert size < 1.5e9
