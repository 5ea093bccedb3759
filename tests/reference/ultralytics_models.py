"""Make the "bring your own model" test models and what their own libraries predict on them.

Runs in the reference virtualenv (``scripts/reference``: Ultralytics, torch 2.14.1, torchvision),
never in framefleet's: Ultralytics is AGPL-3.0 and stays out of framefleet's dependencies.

    .venv-ref/bin/python tests/reference/ultralytics_models.py OUT IMAGE...

For each model it writes ``OUT/NAME.onnx`` (exported by the library's own exporter) and
``OUT/NAME.json``: per image, the boxes, scores, classes, keypoints and mask files its own predictor
gives on that ONNX file (Ultralytics ``YOLO(file).predict``, ``RTDETR(file).predict``; for the
torchvision ResNet-18, torchvision's documented transforms and onnxruntime). Nothing is
downloaded: the networks are built from the packages' architecture files with seeded weights.
Seeded, a network's activations vanish and every detector scores its class bias (1 object in
100 cells), so the BatchNorm statistics are set from the images and the class bias is chosen
for about `PER_IMAGE` boxes per image over the threshold. The boxes mean nothing, which suits a
parity test of the decoding; their number and spread make it a strict one.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

IMGSZ = 320
CONF = 0.25
IOU = 0.7
PER_IMAGE = 30

ULTRALYTICS = {
    # name: (architecture file, task, export options)
    "yolov8n": ("yolov8n.yaml", "detect", {}),
    "yolo11n": ("yolo11n.yaml", "detect", {}),
    "yolov8n-e2e": ("yolov8n.yaml", "detect", {"nms": True}),
    "yolov8n-dynamic": ("yolov8n.yaml", "detect", {"dynamic": True}),
    "yolov8n-seg": ("yolov8n-seg.yaml", "segment", {}),
    "yolov8n-pose": ("yolov8n-pose.yaml", "pose", {}),
    "yolov8n-cls": ("yolov8n-cls.yaml", "classify", {}),
    "rtdetr-l": ("rtdetr-l.yaml", "detect", {}),
}


def calibrate(net: torch.nn.Module, batch: torch.Tensor) -> None:
    """Set every BatchNorm's statistics from the test images: with its initial statistics a
    seeded network's activations shrink to ~1e-7 by the head, and every score is its bias."""
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the batches seen
    net.train()
    with torch.no_grad():
        net(batch)
    net.eval()


def image_batch(images: list[Path], size: int) -> torch.Tensor:
    """The images squashed to size x size, RGB, 0..1: what calibration sees."""
    batch = [
        cv2.resize(cv2.imread(str(p)), (size, size))[:, :, ::-1].transpose(2, 0, 1) / 255.0
        for p in images
    ]
    return torch.from_numpy(np.stack(batch)).float()


def library_class(cfg: str):  # type: ignore[no-untyped-def]
    """Ultralytics' model class for ``cfg``: RT-DETR has its own predictor (no NMS)."""
    from ultralytics import RTDETR, YOLO

    return RTDETR if cfg.startswith("rtdetr") else YOLO


def seeded(cfg: str, images: list[Path]):  # type: ignore[no-untyped-def]
    """Ultralytics' network ``cfg`` with seeded weights whose scores spread over (CONF, 1)."""
    torch.manual_seed(0)
    model = library_class(cfg)(cfg)
    batch = image_batch(images, IMGSZ)
    calibrate(model.model, batch)
    head = model.model.model[-1]
    with torch.no_grad():
        if hasattr(head, "linear"):  # Classify: a peaky softmax, so top-1 is not a coin toss
            head.linear.weight.mul_(30.0)
            return model
        # Class bias: about PER_IMAGE cell-class logits per image clear CONF.
        if hasattr(head, "cv3"):  # YOLO: the last conv of each scale's class branch
            layers = [branch[-1] for branch in head.cv3]
        else:  # RT-DETR: each decoder layer's class head
            layers = list(head.dec_score_head)
        logits: list[torch.Tensor] = []
        hooks = [layer.register_forward_hook(lambda m, i, o: logits.append(o)) for layer in layers]
        for layer in layers:
            layer.bias.zero_()
        try:
            model.model(batch)
        finally:
            for hook in hooks:
                hook.remove()
        flat = torch.cat([o.flatten() for o in logits])
        top = torch.quantile(
            flat[torch.randperm(len(flat))[:1_000_000]], 1 - PER_IMAGE * len(images) / len(flat)
        )
        for layer in layers:
            layer.bias.fill_(float(np.log(CONF / (1 - CONF)) - top))
    return model


def ultralytics_model(name: str, out: Path, images: list[Path]) -> None:
    cfg, task, options = ULTRALYTICS[name]
    model = seeded(cfg, images)
    exported = Path(model.export(format="onnx", imgsz=IMGSZ, **options))
    onnx_path = out / f"{name}.onnx"
    exported.replace(onnx_path)
    library = library_class(cfg)
    runner = (
        library(str(onnx_path)) if cfg.startswith("rtdetr") else library(str(onnx_path), task=task)
    )
    found = {}
    for i, image in enumerate(images):
        r = runner.predict(
            str(image), imgsz=IMGSZ, conf=CONF, iou=IOU, retina_masks=True, verbose=False
        )[0]
        entry: dict[str, object] = {"image_wh": [r.orig_shape[1], r.orig_shape[0]]}
        if r.probs is not None:
            probs = r.probs.data.cpu().numpy()
            top = np.argsort(-probs)[:5]
            entry |= {"class_id": top.tolist(), "confidence": probs[top].tolist()}
        else:
            entry |= {
                "xyxy": r.boxes.xyxy.cpu().numpy().tolist(),
                "confidence": r.boxes.conf.cpu().numpy().tolist(),
                "class_id": r.boxes.cls.cpu().numpy().astype(int).tolist(),
            }
        if r.keypoints is not None:
            entry["keypoints"] = r.keypoints.data.cpu().numpy().tolist()
        if r.masks is not None:
            masks = r.masks.data.cpu().numpy().astype(bool)
            mask_file = f"{name}-{i}-masks.npy"
            np.save(out / mask_file, np.packbits(masks, axis=-1))
            entry["masks"] = {"file": mask_file, "shape": list(masks.shape)}
        found[image.name] = entry
    (out / f"{name}.json").write_text(json.dumps(found))


def resnet18(out: Path, images: list[Path]) -> None:
    """A torchvision ResNet-18 with seeded weights, exported by torch.onnx with a dynamic batch,
    and what torchvision's own ImageNet recipe (resize 256, centre crop 224) plus onnxruntime give."""
    import onnxruntime
    import torchvision
    from PIL import Image
    from torchvision import transforms

    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    with torch.no_grad():
        net.fc.weight.mul_(3.0)  # a peaky softmax: top-1 must not be a coin toss
    onnx_path = out / "resnet18.onnx"
    torch.onnx.export(
        net,
        (torch.zeros(1, 3, 224, 224),),
        str(onnx_path),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    recipe = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    found = {}
    for image in images:
        rgb = Image.fromarray(cv2.cvtColor(cv2.imread(str(image)), cv2.COLOR_BGR2RGB))
        logits = session.run(None, {"input": recipe(rgb)[None].numpy()})[0][0]
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        top = np.argsort(-probs)[:5]
        found[image.name] = {"class_id": top.tolist(), "confidence": probs[top].tolist()}
    (out / "resnet18.json").write_text(json.dumps(found))


def main() -> None:
    out = Path(sys.argv[1])
    images = [Path(p) for p in sys.argv[2:]]
    out.mkdir(parents=True, exist_ok=True)
    # The exporter writes NAME.onnx into the working directory, after the architecture file's
    # name: two exports of one file would overwrite each other in ``out``.
    (out / "exports").mkdir(exist_ok=True)
    os.chdir(out / "exports")
    for name in ULTRALYTICS:
        ultralytics_model(name, out, images)
    resnet18(out, images)
    (out / "DONE").write_text("ok")


if __name__ == "__main__":
    main()
