"""The engine layer: both engines behind one interface, batch probing, choosing an engine, and
the clear error when the onnxruntime extra is missing. Real models, real images."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from helpers import MODEL_DIR, read_image

from framefleet.core.errors import ConfigError
from framefleet.core.modelstore import ModelStore
from framefleet.core.registry import load_registry
from framefleet.inference.engines import choose_engine, open_engine
from framefleet.inference.loaded import ModelCache
from framefleet.inference.models import load_adapter

REGISTRY = load_registry()
STORE = ModelStore(MODEL_DIR, download=False)
IMAGES = ["darknet_dog.jpg", "darknet_horses.jpg", "coral_cat_720p.jpg", "coral_pets.jpg"]


@pytest.mark.parametrize("engine", ["cv2.dnn", "onnxruntime"])
def test_engines_share_one_interface(engine):
    runner = open_engine(engine, MODEL_DIR / "detection/yolox_nano_416.onnx", threads=1)
    assert runner.name == engine
    assert runner.version[0].isdigit()
    out = runner.forward(np.zeros((1, 3, 416, 416), np.float32))
    assert list(out) == runner.output_names == ["output"]
    assert out["output"].shape == (1, 3549, 85)


def test_batched_forward_gives_each_image_its_own_detections():
    # cv2.dnn runs yolox-nano's file at batch 4; the rows split back must decode exactly as
    # the images would alone.
    batched = load_adapter(REGISTRY.get("yolox-nano"), STORE, engine="cv2.dnn", batch=4)
    assert batched.engine.max_batch == 4
    images = [read_image(name) for name in IMAGES]
    together = batched.detect_batch(images)
    for image, found in zip(images, together, strict=True):
        alone = batched(image)
        assert found.data["class_name"].tolist() == alone.data["class_name"].tolist()
        np.testing.assert_allclose(found.xyxy, alone.xyxy, atol=0.5)
        np.testing.assert_allclose(found.confidence, alone.confidence, atol=1e-3)


def test_fixed_batch_file_falls_back_to_one_at_a_time():
    # onnxruntime holds the file's declared input shape (batch 1): the probe must notice.
    adapter = load_adapter(REGISTRY.get("yolox-nano"), STORE, engine="onnxruntime", batch=4)
    assert adapter.engine.max_batch == 1
    images = [read_image(name) for name in IMAGES[:3]]
    assert [len(d) for d in adapter.detect_batch(images)] == [len(adapter(i)) for i in images]


def test_engine_choice_job_then_worker_then_registry():
    assert choose_engine("", "", "") == "cv2.dnn"
    assert choose_engine("", "", "onnxruntime") == "onnxruntime"
    assert choose_engine("", "cv2.dnn", "onnxruntime") == "cv2.dnn"
    assert choose_engine("onnxruntime", "cv2.dnn", "") == "onnxruntime"
    with pytest.raises(ConfigError, match=r"unknown engine 'tensorrt'; choose one of cv2\.dnn"):
        choose_engine("tensorrt")


def test_model_cache_loads_each_model_once_per_engine():
    cache = ModelCache(REGISTRY, STORE, engine="onnxruntime")
    ort = cache.get("fastestdet")
    assert cache.get("fastestdet") is ort
    assert (ort.engine, cache.get("fastestdet", "cv2.dnn").engine) == ("onnxruntime", "cv2.dnn")
    # YuNet's decoding lives in cv2.FaceDetectorYN: it keeps its own engine, and says so.
    assert cache.get("yunet").engine == "cv2.FaceDetectorYN"


def test_missing_onnxruntime_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'framefleet\[onnxruntime\]'"):
        load_adapter(REGISTRY.get("yolox-nano"), STORE, engine="onnxruntime")


def test_unreadable_file_names_the_engine(tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"not an onnx file")
    with pytest.raises(Exception, match=r"onnxruntime \d+\.\d+\.\d+ could not read .*broken\.onnx"):
        open_engine("onnxruntime", path)
