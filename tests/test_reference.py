"""Every shared model on every shared image against an independent, plain reference run.

Each reference below is written from the model's own reference code and MANIFEST.md, the way the
OpenCV tutorials do it: ``cv2.dnn.readNet``, the publisher's preprocessing written out by hand,
``forward`` by output name, decoding in NumPy and ``cv2.dnn.NMSBoxes`` one class at a time. None
of it calls framefleet's adapters, preprocessing or NMS, so a drift in either shows up here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np
import pytest
from helpers import IMAGES_DIR, MODEL_DIR, read_image

from framefleet.core.results import Detections
from framefleet.inference import LoadedModel, load_model

IMAGES = sorted(p.name for p in IMAGES_DIR.iterdir())


@dataclass
class Reference:
    """What a reference run found: boxes (N, 4) xyxy in image pixels, scores, class ids."""

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray


@cache
def net(path: str) -> cv2.dnn.Net:
    return cv2.dnn.readNet(str(MODEL_DIR / path))


@cache
def model(name: str) -> LoadedModel:
    return load_model(name, model_dir=MODEL_DIR, download=False)


def nms_per_class(xyxy, scores, class_ids, score_thr, iou_thr) -> np.ndarray:
    """Indices kept by plain cv2.dnn.NMSBoxes run separately for each class."""
    keep: list[int] = []
    for c in np.unique(class_ids):
        idx = np.flatnonzero(class_ids == c)
        xywh = [
            [float(x1), float(y1), float(x2 - x1), float(y2 - y1)] for x1, y1, x2, y2 in xyxy[idx]
        ]
        kept = cv2.dnn.NMSBoxes(xywh, scores[idx].astype(float).tolist(), score_thr, iou_thr)
        keep.extend(idx[np.asarray(kept, int).reshape(-1)].tolist())
    return np.array(sorted(keep, key=lambda i: -scores[i]), int)


def clip(xyxy: np.ndarray, image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return np.clip(xyxy, 0, [w, h, w, h])


def yolox_reference(image: np.ndarray) -> Reference:
    """YOLOX's demo: ``preproc`` (top-left letterbox, int() sizes, pad 114), grids, NMS."""
    size = 416
    r = min(size / image.shape[0], size / image.shape[1])
    padded = np.full((size, size, 3), 114, np.uint8)
    resized = cv2.resize(
        image, (int(image.shape[1] * r), int(image.shape[0] * r)), interpolation=cv2.INTER_LINEAR
    )
    padded[: resized.shape[0], : resized.shape[1]] = resized
    blob = padded.transpose(2, 0, 1)[None].astype(np.float32)
    out = net("detection/yolox_nano_416.onnx")
    out.setInput(blob)
    pred = out.forward()[0]
    grids, strides = [], []
    for stride in (8, 16, 32):
        hs, ws = size // stride, size // stride
        xv, yv = np.meshgrid(np.arange(ws), np.arange(hs))
        grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
        strides.append(np.full((hs * ws, 1), stride))
    grid, stride = np.concatenate(grids), np.concatenate(strides)
    xy = (pred[:, :2] + grid) * stride
    wh = np.exp(pred[:, 2:4]) * stride
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1) / r
    scores_all = pred[:, 4:5] * pred[:, 5:]
    class_ids = scores_all.argmax(1)
    scores = scores_all[np.arange(len(pred)), class_ids]
    keep = nms_per_class(boxes, scores, class_ids, 0.4, 0.45)
    return Reference(clip(boxes[keep], image), scores[keep], class_ids[keep])


def fastestdet_reference(image: np.ndarray) -> Reference:
    """FastestDet's onnx-runtime example: resize 352, /255, obj^0.6 * cls^0.4, tanh/sigmoid."""
    out = net("detection/fastestdet_352.onnx")
    resized = cv2.resize(image, (352, 352), interpolation=cv2.INTER_LINEAR)
    out.setInput(resized.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    fmap = out.forward()[0].transpose(1, 2, 0)  # (22, 22, 85)
    gh, gw = fmap.shape[:2]
    h, w = image.shape[:2]
    boxes, scores, class_ids = [], [], []
    for y in range(gh):
        for x in range(gw):
            row = fmap[y, x]
            c = int(row[5:].argmax())
            score = max(row[0], 0) ** 0.6 * max(row[5 + c], 0) ** 0.4
            if score < 0.65:
                continue
            cx, cy = (np.tanh(row[1]) + x) / gw, (np.tanh(row[2]) + y) / gh
            bw, bh = 1 / (1 + np.exp(-row[3])), 1 / (1 + np.exp(-row[4]))
            boxes.append(
                [(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h]
            )
            scores.append(score)
            class_ids.append(c)
    if not boxes:
        return Reference(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int))
    b, s, c_ = np.array(boxes), np.array(scores), np.array(class_ids)
    keep = nms_per_class(b, s, c_, 0.65, 0.45)
    return Reference(clip(b[keep], image), s[keep], c_[keep])


def yunet_reference(image: np.ndarray) -> Reference:
    """OpenCV's face detection tutorial: FaceDetectorYN at the image's own size."""
    h, w = image.shape[:2]
    detector = cv2.FaceDetectorYN.create(
        str(MODEL_DIR / "face/yunet_s_640_640.onnx"), "", (w, h), 0.6, 0.3, 5000
    )
    _, faces = detector.detect(image)
    faces = np.zeros((0, 15), np.float32) if faces is None else faces
    boxes = np.concatenate([faces[:, :2], faces[:, :2] + faces[:, 2:4]], 1)
    order = np.argsort(-faces[:, 14], kind="stable")
    return Reference(clip(boxes[order], image), faces[order, 14], np.zeros(len(faces), int))


def ulfd_reference(image: np.ndarray) -> Reference:
    """Linzaer's detect_imgs_onnx.py: 320x240 RGB, (x - 127) / 128, softmax face column, NMS."""
    out = net("face/ulfd_version-RFB-320.onnx")
    rgb = cv2.cvtColor(cv2.resize(image, (320, 240)), cv2.COLOR_BGR2RGB).astype(np.float32)
    out.setInput(((rgb - 127) / 128).transpose(2, 0, 1)[None])
    scores, boxes = out.forward(["scores", "boxes"])
    h, w = image.shape[:2]
    face = scores.reshape(-1, 2)[:, 1]
    xyxy = boxes.reshape(-1, 4) * [w, h, w, h]
    keep = nms_per_class(xyxy, face, np.zeros(len(face), int), 0.7, 0.3)
    return Reference(clip(xyxy[keep], image), face[keep], np.zeros(len(keep), int))


def mobilenet_reference(image: np.ndarray) -> Reference:
    """MANIFEST: blobFromImage(img, 1/128, (224, 224), (128, 128, 128), swapRB=True); top 5."""
    out = net("classification/mobilenet_v2_1.0_224_qdq.onnx")
    out.setInput(cv2.dnn.blobFromImage(image, 1 / 128, (224, 224), (128, 128, 128), swapRB=True))
    probs = out.forward(["output", "embedding"])[0].reshape(-1)  # OpenCV 5 wants both named
    top = np.argsort(-probs, kind="stable")[:5]
    h, w = image.shape[:2]
    return Reference(np.tile([0, 0, w, h], (5, 1)).astype(float), probs[top], top)


def deeplab_reference(image: np.ndarray) -> Reference:
    """MANIFEST: 513x513 RGB, (x - 128) / 128, argmax over classes; the box is the extent of each
    class's pixels, upsampled by nearest neighbour to the image."""
    out = net("segmentation/deeplabv3_mnv2_dm05_pascal_qdq.onnx")
    out.setInput(cv2.dnn.blobFromImage(image, 1 / 128, (513, 513), (128, 128, 128), swapRB=True))
    labels = out.forward()[0].argmax(0).astype(np.uint8)
    h, w = image.shape[:2]
    full = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
    present = [c for c in np.unique(full) if c != 0]
    boxes = []
    for c in present:
        ys, xs = np.nonzero(full == c)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return Reference(
        np.array(boxes, float).reshape(-1, 4), np.ones(len(present)), np.array(present, int)
    )


REFERENCES: dict[str, Callable[[np.ndarray], Reference]] = {
    "yolox-nano": yolox_reference,
    "fastestdet": fastestdet_reference,
    "yunet": yunet_reference,
    "ulfd": ulfd_reference,
    "mobilenet-v2": mobilenet_reference,
    "deeplab-v3": deeplab_reference,
}


def assert_same(got: Detections, want: Reference, *, scores: bool = True) -> None:
    """Same rows in the same order: class ids equal, boxes within 0.5 px, scores within 1e-4."""
    assert got.class_id.tolist() == want.class_ids.tolist()
    np.testing.assert_allclose(got.xyxy, want.xyxy, atol=0.5)
    if scores:
        np.testing.assert_allclose(got.confidence, want.scores, atol=1e-4)


@pytest.mark.parametrize("image_name", IMAGES)
@pytest.mark.parametrize("name", list(REFERENCES))
def test_model_matches_its_reference(name: str, image_name: str) -> None:
    image = read_image(image_name)
    got = model(name)(image)
    want = REFERENCES[name](image)
    if name == "deeplab-v3":
        # framefleet orders segmentation rows by mean confidence; compare them as sets by class.
        order = np.argsort(got.class_id)
        got = got[order]
        assert_same(got, want, scores=False)
    else:
        assert_same(got, want)
