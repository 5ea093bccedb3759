"""Documented defaults. Every entry point turns these plus the environment into one `Settings`."""

from __future__ import annotations

REDIS_URL = "redis://127.0.0.1:6379/0"
"""Broker and job-state store (FRAMEFLEET_REDIS_URL)."""

BATCH_SIZE = 8
"""Images per task: spreads broker overhead over several items (FRAMEFLEET_BATCH_SIZE)."""

MODEL_DIR = "~/.cache/framefleet/models"
MODELS_FILE = "models.toml"
"""The registry file ``framefleet models add`` writes in the model directory, read by default."""
"""Where registry file paths resolve; missing files with a URL are downloaded here
(FRAMEFLEET_MODEL_DIR)."""

TASK_TIME_LIMIT_S = 1800
"""Hard limit of one task, seconds; a batch or video segment that runs longer is killed."""

VISIBILITY_TIMEOUT_S = 2 * TASK_TIME_LIMIT_S
"""Seconds before Redis redelivers an unacknowledged task. Must exceed the longest task, or a
slow task runs twice in parallel (acks are late)."""

REDIS_WAIT_S = 60.0
"""Seconds a worker, `submit --wait` or `status --watch` waits for an unreachable Redis (retrying
with backoff, one log line per retry) before exiting 5 (FRAMEFLEET_REDIS_WAIT_S)."""

LEASE_TTL_S = 30.0
"""Seconds a message in flight stays leased without a heartbeat (renewed every third of it).
A dead worker's messages are resent by a sweeper within about this long (FRAMEFLEET_LEASE_TTL_S)."""

MAX_CRASHES = 3
"""Times an item may kill its worker process (or hang it past the hard time limit) before it is
recorded as failed instead of being run again (FRAMEFLEET_MAX_CRASHES)."""

MAX_FAILURE_RATE = 1.0
"""Share of failed items (0-1) above which a job is stopped early; 1.0: never
(FRAMEFLEET_MAX_FAILURE_RATE, `submit --max-failure-rate`)."""

JOB_TTL_DAYS = 7.0
"""Days a job's per-item state (done set, failures, counted messages, video segments) stays in
Redis after the job ends (done, failed, cancelled); the job record and its counts stay for good.
0: keep the per-item state forever (FRAMEFLEET_JOB_TTL_DAYS). About 100 B per item."""

MIN_FAILURE_SAMPLE = 20
"""Items with an outcome before the failure rate may stop a job (FRAMEFLEET_MIN_FAILURE_SAMPLE)."""

MAX_RETRIES = 5
"""Attempts after the first for items that failed transiently (storage outage)."""

RETRY_BACKOFF_S = 2.0
"""First retry delay, seconds; doubles per attempt."""

MAX_PIXELS = 100_000_000
"""Largest image decoded, in pixels (width × height); 100 MP is 300 MB as BGR. Checked in the file's
header before decoding, because OpenCV's own limit (2^30 pixels) would let a few-KB crafted file
claim gigabytes; a larger image is a failed item (FRAMEFLEET_MAX_PIXELS, worker --max-pixels)."""

ENGINES = ("cv2.dnn", "onnxruntime")
"""Engines that run a network forward; ``onnxruntime`` needs ``pip install
'framefleet[onnxruntime]'``."""

ENGINE = ""
"""The worker's engine (FRAMEFLEET_ENGINE); empty: each registry entry's ``engine``, else
``cv2.dnn``. A job's own ``--engine`` wins over both."""

DEFAULT_ENGINE = "cv2.dnn"
"""The engine of a model whose registry entry, worker and job name none."""

FORWARD_BATCH = 4
"""Images per forward pass where the model file takes a batch (probed at load; files with a fixed
batch of one run one at a time) (FRAMEFLEET_FORWARD_BATCH)."""

PIN_MODES = ("auto", "on", "off")
"""FRAMEFLEET_PIN_CPUS: pin each worker process to its own cores when the node owns the cores
exactly (auto), always (on), or never (off, the default); see `workers.cores`."""

PIN_CPUS = "off"

JPEG_QUALITY = 90
"""Quality of annotated JPEG outputs (0-100)."""

KEY_PREFIX = "framefleet"
"""Prefix of every Redis key framefleet writes besides Celery's own."""

REPORT_DIR = "_framefleet"
"""Folder under the output root for the job summary and failure list."""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
"""Inputs processed as images (case-insensitive)."""

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".gif", ".webm")
"""Inputs processed as videos (case-insensitive)."""

METRICS_PORT = 0
"""Port of a worker's Prometheus ``/metrics`` endpoint; 0 turns metrics off
(FRAMEFLEET_METRICS_PORT)."""

EXPORTER_PORT = 9108
"""Port of ``framefleet exporter`` (queue depth per model and job progress)."""
HOLDOUT = 0.25
"""Share of each class held out from training (finetune, train) to measure accuracy and check the
export's parity (FRAMEFLEET_HOLDOUT)."""

PARITY_ATOL = 1e-4
"""Largest absolute difference of class probabilities allowed between an exported ONNX run
through cv2.dnn and the training side on the held-out images; a larger one refuses the export
(FRAMEFLEET_PARITY_ATOL)."""

LOCAL_MAX_ITEMS = 200
"""Data sets up to this many images are embedded or scored in-process; larger ones go to the
fleet as a job (FRAMEFLEET_LOCAL_MAX_ITEMS; --fleet / --local force either)."""

LEARN_SEED = 0
"""Seed of the held-out split and of training: the same data gives the same model."""

HEAD_EPOCHS = 40
"""Epochs of `framefleet finetune`'s new head (a few L-BFGS steps each for the linear head)."""

DEEP_EPOCHS = 6
"""Epochs of `framefleet finetune --method deep` (unfrozen last blocks + head, PyTorch)."""

CNN_EPOCHS = 12
"""Epochs of `framefleet train` (the small CNN from scratch, PyTorch)."""
SEGMENT_SECONDS = 10.0
"""Length of the segments a video is split into for the fleet, seconds (FRAMEFLEET_SEGMENT_SECONDS).
Shorter segments spread one video over more workers; each segment re-decodes from the keyframe
before it and re-infers the overlap frames, so very short ones waste work."""

SEGMENT_OVERLAP = 4
"""Sampled frames a segment also infers before its start, only to warm up its tracker and to
link its tracks with the previous segment's in the merge; they are not written twice."""

SAMPLE_EVERY = 1
"""Infer every N-th frame of a video (`submit --every`)."""

STATIC_THRESHOLD = 2.0
"""Motion gating (`submit --skip-static`): a sampled frame whose mean absolute difference from the
last inferred frame (grey, 64 px wide, 0-255) is below this is not inferred."""

VIDEO_CRF = 23
"""x264 constant rate factor of annotated videos (lower: better and larger)."""

VIDEO_PRESET = "veryfast"
"""x264 preset of annotated videos: speed against file size at the same quality."""

PRESENCE_TTL_S = 30
"""Seconds a worker stays listed as live after its last heartbeat; it beats every third of this,
so a killed worker drops out of `framefleet status` and submit's warnings within this time."""
