"""Learning on top of the inference library: labelled data sets, transfer learning (a new head on
a registry model's embedding, or its last blocks unfrozen), a small CNN from scratch, ONNX export
checked through ``cv2.dnn``, registration, and evaluation.

Modules that need the optional ``train`` extra (PyTorch) are ``deep`` and ``train``; nothing else
here imports torch, so `framefleet finetune` with the default method and `framefleet evaluate`
work without it.
"""
