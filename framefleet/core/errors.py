"""The one exception tree of framefleet.

Foreign errors (botocore, redis, ``cv2.error``, OS errors) are translated where they occur, with
``raise ... from exc``, so callers handle only these types. Every message says what was expected,
what arrived, and what to change.

    PipelineError
    ├── ConfigError                 bad settings, registry file or CLI option
    │   └── UnknownModelError       a model name the registry does not know
    ├── InputError                  the data given: an input, a labelled data set, one item
    │   ├── NoMediaError            an input that holds no image or video to process
    │   ├── DatasetError            a labelled data set or ground truth that cannot be used
    │   ├── ImageDecodeError        bytes that are not a decodable image  ┐ one item: recorded
    │   └── VideoOpenError          a video that cannot be opened or      ┘ failed, never retried
    │                               decoded, has no frame, or ends before its header says
    ├── StorageError                anything the storage layer could not do
    │   ├── ObjectNotFound          a key or file that does not exist
    │   ├── BucketNotFound          an S3 bucket that does not exist
    │   └── StorageUnavailable      endpoint unreachable, bad credentials, access denied
    │       └── TransientStorageError  5xx, throttling, reset mid-request (also a RetryableError)
    ├── ModelError                  a model that cannot be fetched or loaded
    │   ├── ChecksumMismatch        a model or labels file whose sha256 differs from the registry
    │   ├── ModelLoadError          cv2.dnn refused the file, or a required file is missing
    │   └── ExportCheckError        an exported model whose cv2.dnn outputs differ from training
    ├── StateError                  the fleet's shared state (Redis) says no
    │   ├── BrokerError             Redis (broker or job state) unreachable
    │   ├── JobNotFound             a job id this Redis does not hold
    │   │   └── JobItemsExpired     an ended job whose per-item state expired (retention)
    │   ├── JobFinished             a job that already ended (done, failed, cancelled) is final
    │   └── ProducerBusy            another live producer lists that job
    ├── ItemsFailed                 a task some of whose items finally failed (after recording)
    ├── JobDecodeError              a queue message or stored job spec that is not a valid one
    ├── DocumentError               a result document that is not one this version reads
    └── RetryableError              a transient failure worth another attempt

The tree is by cause; the CLI maps causes to exit codes in one table at its edge
(`framefleet.cli.base`).
"""

from __future__ import annotations


class PipelineError(Exception):
    """Root of every error framefleet raises on purpose."""


class ConfigError(PipelineError):
    """A setting, registry entry or CLI option is invalid."""


class UnknownModelError(ConfigError):
    """A model name that is not in the registry."""


class StateError(PipelineError):
    """The fleet's shared state (Redis) cannot do what was asked: it is unreachable, or the job
    is not there or no longer takes this."""


class JobNotFound(StateError):
    """No job with that id in this Redis (deleted, or another Redis)."""


class JobItemsExpired(JobNotFound):
    """A job that ended long enough ago that its per-item state (done items, failures) expired
    from Redis; its record and counts are still there."""


class JobFinished(StateError):
    """The job already ended (done, failed or cancelled); a finished job is final."""


class ProducerBusy(StateError):
    """Another live producer is listing that job."""


class InputError(PipelineError):
    """Data that cannot be used: a whole input, a labelled data set, or one item (an item is
    recorded as failed and not retried)."""


class NoMediaError(InputError):
    """The input holds no image or video (an empty folder, or only other files)."""


class DatasetError(InputError):
    """A labelled data set (ImageFolder layout) or ground-truth file that cannot be used: too few
    classes or items, an unknown layout, a truth file that does not parse."""


class StorageError(PipelineError):
    """The storage layer could not complete an operation."""


class ObjectNotFound(StorageError):
    """The object or file does not exist."""


class BucketNotFound(StorageError):
    """The S3 bucket does not exist."""


class StorageUnavailable(StorageError):
    """The storage endpoint is unreachable or refuses our credentials."""


class ModelError(PipelineError):
    """A model cannot be fetched, verified or loaded."""


class ChecksumMismatch(ModelError):
    """A file's sha256 differs from the one the registry records."""


class ModelLoadError(ModelError):
    """cv2.dnn could not load the model, or one of its files is missing."""


class ExportCheckError(ModelError):
    """An exported model whose outputs through ``cv2.dnn`` differ from the training side's by more
    than the stated tolerance; the export is refused."""


class ImageDecodeError(InputError):
    """The bytes are not an image OpenCV can decode."""


class VideoOpenError(InputError):
    """The video cannot be opened or decoded, has no frame, or ends before its header says."""


class ItemsFailed(PipelineError):
    """Raised by a task after it recorded its outcomes, when some items finally failed.

    It exists for monitors: Celery marks the task FAILURE, so Flower's task list and its
    workers' failed counts show it. The items themselves are already recorded in the job state;
    nothing retries this error.
    """


class DocumentError(PipelineError):
    """A result document that is malformed, of another kind, or of another schema version."""


class JobDecodeError(PipelineError):
    """A queue message, or a job spec stored in Redis, that is not a valid one."""


class BrokerError(StateError):
    """Redis, as broker or job-state store, is unreachable or misbehaving."""


class RetryableError(PipelineError):
    """A transient failure (storage outage, timeout) that another attempt may get past."""


class TransientStorageError(StorageUnavailable, RetryableError):
    """The storage server failed in a way another attempt may get past (5xx, throttling, reset).

    Both a `StorageUnavailable` and a `RetryableError`, so ``except RetryableError`` in a task
    retries it while ``except StorageUnavailable`` still sees every outage.
    """
