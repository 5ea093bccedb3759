"""The plain pipeline functions, in-process: real model, real images, the in-memory storage that
ships with framefleet for injecting faults a real server cannot produce on cue."""

from __future__ import annotations

import json
import uuid

import pytest
from helpers import MEDIA_DIR, MODEL_DIR

from framefleet.core.errors import ModelLoadError, StorageUnavailable
from framefleet.core.messages import ImageBatch
from framefleet.core.modelstore import ModelStore
from framefleet.core.outputs import annotated_key, result_key
from framefleet.core.registry import load_registry
from framefleet.core.storage import MemoryStorage
from framefleet.inference.loaded import LoadedModel, ModelCache
from framefleet.inference.pipeline import run_image_batch


@pytest.fixture(scope="module")
def yolox() -> LoadedModel:
    return ModelCache(load_registry(), ModelStore(MODEL_DIR, download=False)).get("yolox-nano")


@pytest.fixture
def stores() -> tuple[MemoryStorage, MemoryStorage]:
    name = uuid.uuid4().hex[:8]
    src, dst = MemoryStorage(f"mem://{name}-in/"), MemoryStorage(f"mem://{name}-out/")
    src.write_bytes("dog.jpg", (MEDIA_DIR / "images" / "darknet_dog.jpg").read_bytes())
    src.write_bytes("bad.jpg", b"GIF89a but truncated")
    return src, dst


def batch(src: MemoryStorage, dst: MemoryStorage, *items: str) -> ImageBatch:
    return ImageBatch("job", 0, src.uri, dst.uri, "yolox-nano", items)


def test_good_and_bad_items_in_one_batch(stores, yolox: LoadedModel) -> None:
    src, dst = stores
    results = {
        r.item: r
        for r in run_image_batch(batch(src, dst, "dog.jpg", "bad.jpg"), src, dst, lambda: yolox)
    }
    assert results["dog.jpg"].ok
    assert results["dog.jpg"].classes == {"dog": 1, "bicycle": 1, "car": 1}
    assert set(results["dog.jpg"].timings_ms) >= {
        "read",
        "decode",
        "preprocess",
        "infer",
        "postprocess",
        "annotate",
        "write",
    }
    document = json.loads(dst.read_bytes(result_key("dog.jpg")))
    assert document["model"]["sha256"] == yolox.sha256
    assert sorted(document["results"]["data"]["class_name"]) == ["bicycle", "car", "dog"]
    assert dst.exists(annotated_key("dog.jpg"))

    bad = results["bad.jpg"]
    assert (bad.ok, bad.transient, bad.error) == (False, False, "ImageDecodeError")
    assert "mem://" in bad.message
    assert "bad.jpg" in bad.message
    assert not dst.exists(result_key("bad.jpg"))  # nothing half-written for a failed item


def test_storage_outage_is_transient_and_other_items_go_on(stores, yolox: LoadedModel) -> None:
    src, dst = stores
    src.write_bytes("dog2.jpg", src.read_bytes("dog.jpg"))
    dst.fail_next(1, operation="write_bytes")  # the first item's first write fails
    results = list(run_image_batch(batch(src, dst, "dog.jpg", "dog2.jpg"), src, dst, lambda: yolox))
    assert [(r.item, r.ok, r.transient) for r in results] == [
        ("dog.jpg", False, True),
        ("dog2.jpg", True, False),
    ]
    assert results[0].error == "TransientStorageError"


def test_unreachable_storage_is_retried_too(stores, yolox: LoadedModel) -> None:
    src, dst = stores
    src.fail_next(
        1, exc=StorageUnavailable("endpoint http://127.0.0.1:1 unreachable"), operation="read_bytes"
    )
    (result,) = run_image_batch(batch(src, dst, "dog.jpg"), src, dst, lambda: yolox)
    assert (result.ok, result.transient, result.error) == (False, True, "StorageUnavailable")


def test_model_that_cannot_load_fails_every_item_with_its_reason(stores) -> None:
    src, dst = stores

    def broken() -> LoadedModel:
        raise ModelLoadError("model file /models/x.onnx is missing; put the file there")

    results = list(run_image_batch(batch(src, dst, "dog.jpg", "bad.jpg"), src, dst, broken))
    assert [(r.item, r.ok, r.error) for r in results] == [
        ("dog.jpg", False, "ModelLoadError"),
        ("bad.jpg", False, "ModelLoadError"),
    ]
    assert "x.onnx is missing" in results[0].message


def test_items_already_done_are_skipped(stores, yolox: LoadedModel) -> None:
    src, dst = stores
    results = list(
        run_image_batch(
            batch(src, dst, "dog.jpg", "bad.jpg"),
            src,
            dst,
            lambda: yolox,
            skip=lambda item: item == "dog.jpg",
        )
    )
    assert [r.item for r in results] == ["bad.jpg"]
    assert not dst.exists(result_key("dog.jpg"))
