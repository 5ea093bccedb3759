"""The model registry and the model store: parsing errors, checksums, downloads, missing files.

Downloads go to a local ``http.server`` in a thread that serves the shared models folder: a
real HTTP download and sha256 check, with nothing fetched from the internet.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from contextlib import nullcontext as does_not_raise
from pathlib import Path

import pytest
from helpers import MODEL_DIR

from framefleet.core.errors import (
    ChecksumMismatch,
    ConfigError,
    ModelError,
    ModelLoadError,
    UnknownModelError,
)
from framefleet.core.modelstore import ModelStore, sha256_file
from framefleet.core.registry import FileSpec, load_registry
from framefleet.inference.models import FAMILIES, load_adapter

REGISTRY = load_registry()
FASTESTDET = "detection/fastestdet_352.onnx"
FASTESTDET_SHA = "31cb14c017fce347cb4c846ec62fdf00d76bb3beecdf4be21e7116ac67feb880"

ENTRY = """
[models.mine]
task = "detection"
family = "yolox"
files.model = { path = "m.onnx" }
preprocess = { input_wh = [416, 416] }
"""


@pytest.mark.parametrize(
    ("text", "expectation"),
    [
        # a well-formed extra entry
        pytest.param(ENTRY, does_not_raise(), id="valid"),
        # a syntax error
        pytest.param(
            "[models.mine\n", pytest.raises(ConfigError, match="is not valid TOML"), id="not-toml"
        ),
        # valid TOML without any model
        pytest.param(
            "default = 'x'\n",
            pytest.raises(ConfigError, match=r"has no \[models\.NAME\] tables"),
            id="empty",
        ),
        # a required key missing: named, with the entry and the file
        pytest.param(
            ENTRY.replace('task = "detection"\n', ""),
            pytest.raises(ConfigError, match=r"model 'mine' .* lacks the required key 'task'"),
            id="no-task",
        ),
        # a task framefleet does not have
        pytest.param(
            ENTRY.replace('"detection"', '"tracking"'),
            pytest.raises(ConfigError, match="task must be one of detection, faces"),
            id="bad-task",
        ),
        # files without the network itself
        pytest.param(
            ENTRY.replace("files.model", "files.weights"),
            pytest.raises(ConfigError, match="files must include a 'model' role"),
            id="no-model-file",
        ),
        # an unknown resize mode
        pytest.param(
            ENTRY.replace("[416, 416] }", '[416, 416], resize = "zoom" }'),
            pytest.raises(ConfigError, match=r"preprocess\.resize must be one of"),
            id="bad-resize",
        ),
        # a zero input size
        pytest.param(
            ENTRY.replace("[416, 416]", "[416, 0]"),
            pytest.raises(ConfigError, match="input_wh must be two positive integers"),
            id="bad-input-wh",
        ),
        # a misspelt threshold name (it is nms_threshold)
        pytest.param(
            ENTRY + "postprocess = { iou = 0.5 }\n",
            pytest.raises(ConfigError, match=r"invalid preprocess/postprocess.*'iou'"),
            id="unknown-postprocess-key",
        ),
        # a checksum that cannot be a sha256
        pytest.param(
            ENTRY.replace('"m.onnx" }', '"m.onnx", sha256 = "abc" }'),
            pytest.raises(ConfigError, match="sha256 must be 64 hex digits, got 'abc'"),
            id="short-sha",
        ),
        # a default that names no entry
        pytest.param(
            "default = 'nope'\n" + ENTRY,
            pytest.raises(ConfigError, match="default model 'nope' is not an entry"),
            id="bad-default",
        ),
    ],
)
def test_registry_file_errors(tmp_path, text, expectation):
    extra = tmp_path / "models.toml"
    extra.write_text(text, encoding="utf-8")
    with expectation:
        registry = load_registry(extra)
        assert registry.get("mine").preprocess.input_wh == (416, 416)
        assert "yolox-nano" in registry.names()  # built-ins stay


def test_registry_file_missing(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot read model registry file .*nope\.toml"):
        load_registry(tmp_path / "nope.toml")


def test_unknown_model_lists_known_names():
    with pytest.raises(
        UnknownModelError, match=r"unknown model 'yolo-v99'; known models: deeplab-v3, "
    ):
        REGISTRY.get("yolo-v99")


def test_every_builtin_family_has_an_adapter():
    assert {spec.family for spec in REGISTRY.models.values()} <= set(FAMILIES)


def test_unknown_family_lists_families(tmp_path):
    spec = load_registry(_write(tmp_path / "r.toml", ENTRY.replace('"yolox"', '"resnet"')))
    with pytest.raises(
        ConfigError,
        match=r"family 'resnet'; known families: classifier, deeplab, detr, embedding, fastestdet",
    ):
        load_adapter(spec.get("mine"), ModelStore(MODEL_DIR, download=False))


# --- ModelStore -------------------------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the test output clean


@pytest.fixture(scope="module")
def models_url() -> Iterator[str]:
    """Base URL of a local HTTP server serving the shared models folder."""
    handler = functools.partial(_QuietHandler, directory=str(MODEL_DIR))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_download_verifies_and_saves(tmp_path, models_url):
    spec = FileSpec(FASTESTDET, FASTESTDET_SHA, f"{models_url}/{FASTESTDET}")
    path = ModelStore(tmp_path).path(spec)
    assert path == tmp_path / FASTESTDET
    assert sha256_file(path) == FASTESTDET_SHA
    assert sorted(p.name for p in path.parent.iterdir()) == ["fastestdet_352.onnx"]  # no temp left


def test_download_with_wrong_sha_is_refused_and_not_saved(tmp_path, models_url):
    spec = FileSpec(FASTESTDET, "0" * 64, f"{models_url}/{FASTESTDET}")
    with pytest.raises(
        ChecksumMismatch,
        match=rf"has sha256 {FASTESTDET_SHA}, the registry expects "
        r"0{64}; the file was refused \(not saved to",
    ):
        ModelStore(tmp_path).path(spec)
    assert not (tmp_path / "detection").exists()  # nothing saved, not even the folder made for it


def test_download_not_found(tmp_path, models_url):
    spec = FileSpec("detection/nope.onnx", None, f"{models_url}/detection/nope.onnx")
    with pytest.raises(ModelError, match=r"could not download .*nope\.onnx.*404"):
        ModelStore(tmp_path).path(spec)


@pytest.mark.parametrize(
    ("spec", "download", "message"),
    [
        # no URL: nothing to fall back on
        pytest.param(
            FileSpec("x/model.onnx"),
            True,
            r"x/model\.onnx is missing and the registry gives no URL for it; put the "
            r"file there or set FRAMEFLEET_MODEL_DIR",
            id="no-url",
        ),
        # a URL, but downloads are off
        pytest.param(
            FileSpec("x/model.onnx", None, "http://127.0.0.1:9/model.onnx"),
            False,
            r"x/model\.onnx is missing and downloads are off",
            id="downloads-off",
        ),
    ],
)
def test_missing_file(tmp_path, spec, download, message):
    with pytest.raises(ModelLoadError, match=message):
        ModelStore(tmp_path, download=download).path(spec)


def test_model_file_with_wrong_sha_is_refused(tmp_path):
    # yolox-nano's path holds FastestDet's bytes: load_adapter must refuse before cv2 sees them.
    target = tmp_path / REGISTRY.get("yolox-nano").files["model"].path
    target.parent.mkdir(parents=True)
    shutil.copyfile(MODEL_DIR / FASTESTDET, target)
    with pytest.raises(
        ChecksumMismatch,
        match=rf"yolox_nano_416\.onnx has sha256 {FASTESTDET_SHA}, "
        r"the registry expects d39bee73.*delete the file to download it again",
    ):
        load_adapter(REGISTRY.get("yolox-nano"), ModelStore(tmp_path, download=False))


def test_missing_labels_file(tmp_path):
    spec = REGISTRY.get("yolox-nano")
    target = tmp_path / spec.files["model"].path
    target.parent.mkdir(parents=True)
    shutil.copyfile(MODEL_DIR / spec.files["model"].path, target)
    with pytest.raises(
        ModelLoadError, match=r"labels/coco80\.names is missing and downloads are off"
    ):
        load_adapter(spec, ModelStore(tmp_path, download=False))
