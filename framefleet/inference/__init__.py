"""The inference library: framefleet's models as plain Python, with no Celery, Redis or fleet.

Load a registry model by name (its files verified by sha256), call it on an image or a path, get
`Detections`; draw them; read and write the same result documents a fleet job writes::

    from framefleet.inference import load_model, read_image

    model = load_model("yolox-nano", model_dir="../shared/models")
    image = read_image("../shared/media/images/darknet_dog.jpg")
    detections = model(image)                  # Detections: xyxy, confidence, class_id, data
    print(detections.data["class_name"])       # ['dog' 'bicycle' 'car']
    cv2.imwrite("dog.jpg", model.annotate(image, detections))

    doc = analyse_image(image, model, source="darknet_dog.jpg")   # an ImageDocument
    assert read_document(doc.to_json()).results.class_id.tolist() == [16, 1, 2]

``run_local`` (``framefleet run``) does the same for a file or a folder, writing the fleet's
outputs. This package imports neither Celery nor Redis nor the job state (an import-linter
contract holds it); the fleet's workers are built on top of it.
"""

from framefleet.core.documents import (
    Document,
    FrameResult,
    ImageDocument,
    ModelInfo,
    VideoDocument,
    read_document,
)
from framefleet.core.results import Detections
from framefleet.inference.annotate import annotate
from framefleet.inference.imageio import decode_image, encode_image, read_image
from framefleet.inference.loaded import LoadedModel, ModelCache, load_model
from framefleet.inference.pipeline import analyse_image
from framefleet.inference.runner import ModelRef, RunSummary, run_local

__all__ = [
    "Detections",
    "Document",
    "FrameResult",
    "ImageDocument",
    "LoadedModel",
    "ModelCache",
    "ModelInfo",
    "ModelRef",
    "RunSummary",
    "VideoDocument",
    "analyse_image",
    "annotate",
    "decode_image",
    "encode_image",
    "load_model",
    "read_document",
    "read_image",
    "run_local",
]
