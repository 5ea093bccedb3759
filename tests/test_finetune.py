"""framefleet finetune: a new head on mobilenet-v2's embedding, on sets made at test time
(tests/learnsets.py), exported as one ONNX, checked through cv2.dnn, registered and served by
real workers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fleet import Fleet, wait_for_job
from learnfix import assert_readable_png, model_dir_with_shared
from learnsets import media_crops, shapes
from test_e2e import run_cli

from framefleet.core.errors import ExportCheckError
from framefleet.core.modelstore import ModelStore
from framefleet.core.outputs import result_key
from framefleet.core.registry import load_registry
from framefleet.core.results import Detections
from framefleet.core.settings import Settings
from framefleet.core.storage import open_storage
from framefleet.learn import export
from framefleet.learn.datasets import image_folder, split
from framefleet.learn.features import embed_locally
from framefleet.learn.finetune import finetune
from framefleet.learn.head import Dense, train_head
from framefleet.learn.parity import cv_dnn_probabilities
from framefleet.learn.publish import publish
from framefleet.learn.register import readable
from framefleet.state.jobs import JobStore

CROPS_PER_CLASS = 16


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    shapes(root, per_class=40)
    return root


@pytest.fixture(scope="module")
def crops_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("crops")
    counts = media_crops(root, per_class=CROPS_PER_CLASS)
    assert counts == dict.fromkeys(("person", "bottle", "car"), CROPS_PER_CLASS), counts
    return root


@pytest.fixture
def learn_settings(tmp_path: Path) -> Settings:
    return Settings(
        model_dir=model_dir_with_shared(tmp_path / "models"),
        models_file=tmp_path / "my-models.toml",
        cv_threads=1,
    )


def test_head_beats_nearest_centroid_and_passes_parity(
    shapes_dir: Path, learn_settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = finetune(
        learn_settings, str(shapes_dir), "mobilenet-v2", out, name="shapes", echo=print
    )
    print(
        f"shapes: head {result.holdout_accuracy:.3f} vs nearest-centroid {result.baseline_accuracy:.3f}"
    )
    # 160 drawn shapes, 40 held out: the head (0.80) beats the base embedding's centroids (0.65)
    assert result.holdout_accuracy > result.baseline_accuracy
    assert result.holdout_accuracy >= 0.75
    parity = result.published.parity
    assert parity.items == 40
    assert parity.max_abs_diff <= 1e-4
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["baseline_accuracy"] == result.baseline_accuracy
    assert len(metrics["history"]["loss"]) == 40
    assert metrics["history"]["loss"][-1] < metrics["history"]["loss"][0]
    assert (out / "labels.txt").read_text().split() == ["circle", "cross", "square", "triangle"]
    assert_readable_png(out / "training_curve.png")
    # registered: the entry loads, its sha256 is the copied file's, and the model is one graph
    spec = load_registry(learn_settings.models_file).get("shapes")
    assert spec.family == "classifier"
    copied = ModelStore(learn_settings.model_dir, download=False).path(spec.files["model"])
    assert copied.read_bytes() == (out / "model.onnx").read_bytes()
    outputs = {o.name for o in export.load_graph(copied).graph.output}
    assert outputs == {"output", "embedding"}


def test_broken_export_fails_parity_with_numbers(
    shapes_dir: Path, learn_settings: Settings, tmp_path: Path
) -> None:
    # three classes, 8 images each: enough to train a head whose export can be broken
    full = image_folder(str(shapes_dir))
    data = full.subset(np.flatnonzero(full.labels < 3)[np.r_[0:8, 40:48, 80:88]])
    data = type(data)(data.storage, data.keys, data.labels, data.classes[:3])
    train, held = split(data, 0.25)
    emb = embed_locally(data, readable(learn_settings), "mobilenet-v2")
    head = train_head(
        emb.rows(train), data.labels[train], emb.rows(held), data.labels[held], 3, epochs=5
    )
    layers = head.layers()
    # the classic mistake: exporting the classifier's weights without the folded-in scaler
    clf = head.pipeline[-1]
    broken = [Dense(np.asarray(clf.coef_.T, np.float32), np.asarray(clf.intercept_, np.float32))]
    base = export.load_graph(
        learn_settings.model_dir / "classification/mobilenet_v2_1.0_224_qdq.onnx"
    )
    spec = load_registry().get("mobilenet-v2")
    common = {
        "classes": list(data.classes),
        "preprocess": spec.preprocess,
        "held_images": lambda: data.images(held),
        "expected": head.predict_proba(emb.rows(held)),
        "atol": 1e-4,
        "history": head.history,
        "metrics": {},
        "title": "t",
        "name": None,
        "model_dir": learn_settings.model_dir,
        "registry_file": None,
    }
    with pytest.raises(ExportCheckError, match=r"max \|Δp\| [0-9.e-]+ > tolerance 0.0001") as info:
        publish(export.with_head(base, broken), tmp_path / "broken", **common)
    print(info.value)
    assert not (tmp_path / "broken" / "model.onnx").exists()
    assert (tmp_path / "broken" / "model.rejected.onnx").exists()
    good = publish(export.with_head(base, layers), tmp_path / "good", **common)
    assert good.parity.max_abs_diff <= 1e-4
    assert good.parity.top1_agreement == 1.0


@pytest.mark.integration
def test_finetune_on_fleet_then_serve_through_workers(
    crops_dir: Path, settings: Settings, fleet: Fleet, job_store: JobStore, tmp_path: Path
) -> None:
    base = settings.with_(model_dir=model_dir_with_shared(tmp_path / "models"))
    learn = base.with_(models_file=tmp_path / "my-models.toml")  # created by the registration
    fleet.settings = base
    fleet.start("embedder", "--models", "mobilenet-v2-embed")
    out = tmp_path / "crops-model"
    result = run_cli(
        base,
        "--models-file",
        str(learn.models_file),
        "finetune",
        "--data",
        str(crops_dir),
        "--base",
        "mobilenet-v2",
        "--out",
        str(out),
        "--name",
        "media-crops",
        "--fleet",
    )
    assert result.returncode == 0, result.stderr
    print(result.stdout, result.stderr[-3000:])
    metrics = json.loads((out / "metrics.json").read_text())
    job = job_store.get(metrics["feature_job"])  # features came from a real job on the worker
    assert (job.total, job.done, job.failed) == (3 * CROPS_PER_CLASS,) * 2 + (0,)
    first_car = "car/" + sorted(p.name for p in (crops_dir / "car").iterdir())[0]
    feature_doc = json.loads(open_storage(str(out / "features")).read_bytes(result_key(first_car)))
    assert feature_doc["model"]["name"] == "mobilenet-v2-embed"
    assert np.asarray(feature_doc["results"]["data"]["embedding"]).shape == (1, 1280)
    print(
        f"crops: head {metrics['holdout_accuracy']:.3f} vs nearest-centroid {metrics['baseline_accuracy']:.3f}"
    )
    assert metrics["holdout_accuracy"] >= metrics["baseline_accuracy"]
    assert metrics["holdout_accuracy"] >= 0.9
    assert "registered media-crops" in result.stdout

    # serve: a worker started with the registry file runs the new model by name
    fleet.settings = learn
    fleet.start("server", "--models", "media-crops")
    served = run_cli(
        learn,
        "submit",
        str(crops_dir),
        "--out",
        str(tmp_path / "served"),
        "--model",
        "media-crops",
        "--wait",
    )
    assert served.returncode == 0, served.stderr
    job_id = served.stdout.splitlines()[0].strip()
    record = wait_for_job(job_store, job_id)
    assert (record.done, record.failed) == (3 * CROPS_PER_CLASS, 0)
    dst = open_storage(str(tmp_path / "served"))
    keys = sorted(str(p.relative_to(crops_dir)) for p in crops_dir.rglob("*.png"))
    right = 0
    data = image_folder(str(crops_dir))
    want = cv_dnn_probabilities(
        out / "model.onnx",
        load_registry(learn.models_file).get("media-crops").preprocess,
        data.images(np.arange(len(data))),
    )
    for i, key in enumerate(keys):
        document = json.loads(dst.read_bytes(result_key(key)))
        assert document["model"]["name"] == "media-crops"
        assert document["model"]["sha256"] == metrics["registered"]["sha256"]
        top = Detections.from_json(document["results"])
        assert top.class_id[0] == int(want[i].argmax())  # the worker ran the exported graph
        assert abs(float(top.confidence[0]) - float(want[i].max())) < 1e-3
        right += top.data["class_name"][0] == key.split("/")[0]
    assert right >= 0.9 * len(keys)

    # evaluate scores the finished job's outputs without rerunning it
    scored = run_cli(learn, "evaluate", "--job", job_id, "--out", str(tmp_path / "eval"))
    assert scored.returncode == 0, scored.stderr
    evaluation = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluation["job_id"] == job_id
    assert evaluation["accuracy"] == pytest.approx(right / len(keys))
    assert sum(map(sum, evaluation["confusion"]["matrix"])) == len(keys)


def test_deep_method_converts_retrains_and_exports(
    shapes_dir: Path, learn_settings: Settings, tmp_path: Path
) -> None:
    import torch
    from onnx import numpy_helper

    from framefleet.inference import load_model
    from framefleet.learn.deep import OnnxTail, cut_tensor, finetune_deep, front_features

    # the hand conversion is faithful: the tail in PyTorch gives cv2.dnn's own embedding
    base_path = learn_settings.model_dir / "classification/mobilenet_v2_1.0_224_qdq.onnx"
    graph = export.load_graph(base_path)
    cut = cut_tensor(graph, 2)
    few = image_folder(str(shapes_dir)).subset(np.arange(0, 160, 40))
    reading = readable(learn_settings)
    with torch.no_grad():
        converted = OnnxTail(graph, cut)(
            torch.from_numpy(front_features(graph, cut, few, reading, "mobilenet-v2"))
        ).numpy()
    base = load_model("mobilenet-v2", model_dir=learn_settings.model_dir)
    want = np.stack([base.adapter.embed(image) for image in few.images(np.arange(len(few)))])
    np.testing.assert_allclose(converted, want, atol=1e-4, rtol=1e-4)

    out = tmp_path / "deep"
    result = finetune_deep(
        learn_settings, str(shapes_dir), "mobilenet-v2", out, name="shapes-deep", unfreeze=2,
        epochs=4,
    )  # fmt: skip
    print(
        f"deep: held-out {result.holdout_accuracy:.3f} vs nearest-centroid {result.baseline_accuracy:.3f}"
    )
    assert result.holdout_accuracy > result.baseline_accuracy
    assert result.published.parity.max_abs_diff <= 1e-4
    exported = export.load_graph(out / "model.onnx")
    # the retrained blocks are stored as float weights that differ from the shared file's
    tail = OnnxTail(graph, cut)
    trained = {t.name: t for t in exported.graph.initializer}
    changed = 0
    for name, original in tail.trained().items():
        assert name in trained, f"{name} was not replaced by a float initializer"
        changed += not np.allclose(numpy_helper.to_array(trained[name]), original)
    assert changed == len(tail.names)
    assert_readable_png(out / "training_curve.png")
    assert load_registry(learn_settings.models_file).get("shapes-deep").family == "classifier"
