"""One frozen `Settings`, built by each entry point from the environment and CLI options.

Nothing reads ``os.environ`` at import time: `Settings.from_env` is called explicitly and the
result is passed down.

| variable                    | field               | default                        |
|-----------------------------|---------------------|--------------------------------|
| FRAMEFLEET_REDIS_URL        | redis_url           | redis://127.0.0.1:6379/0       |
| FRAMEFLEET_MODEL_DIR        | model_dir           | ~/.cache/framefleet/models     |
| FRAMEFLEET_MODELS           | models_file         | MODEL_DIR/models.toml, if there |
| FRAMEFLEET_BATCH_SIZE       | batch_size          | 8                              |
| FRAMEFLEET_WORKER_MODELS    | worker_models       | the registry's default model   |
| FRAMEFLEET_CONCURRENCY      | concurrency         | number of cores                |
| FRAMEFLEET_TASK_TIME_LIMIT  | task_time_limit_s   | 1800                           |
| FRAMEFLEET_MAX_RETRIES      | max_retries         | 5                              |
| FRAMEFLEET_RETRY_BACKOFF    | retry_backoff_s     | 2.0 (doubles per attempt)      |
| FRAMEFLEET_CV_THREADS       | cv_threads          | 0: cores // concurrency        |
| FRAMEFLEET_PIN_CPUS         | pin_cpus            | off (auto: when the node owns the cores) |
| FRAMEFLEET_FSYNC            | fsync               | 0: local writes not fsynced     |
| FRAMEFLEET_ENGINE           | engine              | "": registry entry, else cv2.dnn |
| FRAMEFLEET_FORWARD_BATCH    | forward_batch       | 4 (where the model file takes it) |
| FRAMEFLEET_METRICS_PORT     | metrics_port        | 0: no worker metrics           |
| FRAMEFLEET_EXPORTER_PORT    | exporter_port       | 9108                           |
| FRAMEFLEET_HOLDOUT          | holdout             | 0.25 (finetune, train)         |
| FRAMEFLEET_PARITY_ATOL      | parity_atol         | 1e-4 (export parity check)     |
| FRAMEFLEET_LOCAL_MAX_ITEMS  | local_max_items     | 200 (in-process up to this)    |
| FRAMEFLEET_SEGMENT_SECONDS  | segment_seconds     | 10.0 (video segment length)    |
| FRAMEFLEET_MAX_PIXELS       | max_pixels          | 100000000 (100 MP)             |
| FRAMEFLEET_REDIS_WAIT_S     | redis_wait_s        | 60 (then exit 5)               |
| FRAMEFLEET_LEASE_TTL_S      | lease_ttl_s         | 30                             |
| FRAMEFLEET_MAX_CRASHES      | max_crashes         | 3                              |
| FRAMEFLEET_MAX_FAILURE_RATE | max_failure_rate    | 1.0 (never stop early)         |
| FRAMEFLEET_MIN_FAILURE_SAMPLE | min_failure_sample | 20                            |
| FRAMEFLEET_JOB_TTL_DAYS     | job_ttl_days        | 7 (per-item state after end; 0: forever) |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from framefleet.core import defaults
from framefleet.core.errors import ConfigError
from framefleet.core.redact import redact_url
from framefleet.core.registry import Registry, load_registry


@dataclass(frozen=True)
class Settings:
    """Everything an entry point needs, in one place.

    Example:
        >>> settings = Settings.from_env({"FRAMEFLEET_BATCH_SIZE": "16"})
        >>> settings.batch_size
        16
    """

    redis_url: str = defaults.REDIS_URL
    model_dir: Path = field(default_factory=lambda: Path(defaults.MODEL_DIR).expanduser())
    models_file: Path | None = None
    batch_size: int = defaults.BATCH_SIZE
    worker_models: tuple[str, ...] = ()
    concurrency: int = os.cpu_count() or 1
    task_time_limit_s: int = defaults.TASK_TIME_LIMIT_S
    max_retries: int = defaults.MAX_RETRIES
    retry_backoff_s: float = defaults.RETRY_BACKOFF_S
    cv_threads: int = 0
    pin_cpus: str = defaults.PIN_CPUS
    fsync: bool = False
    engine: str = defaults.ENGINE
    forward_batch: int = defaults.FORWARD_BATCH
    metrics_port: int = defaults.METRICS_PORT
    exporter_port: int = defaults.EXPORTER_PORT
    holdout: float = defaults.HOLDOUT
    parity_atol: float = defaults.PARITY_ATOL
    local_max_items: int = defaults.LOCAL_MAX_ITEMS
    segment_seconds: float = defaults.SEGMENT_SECONDS
    max_pixels: int = defaults.MAX_PIXELS
    redis_wait_s: float = defaults.REDIS_WAIT_S
    lease_ttl_s: float = defaults.LEASE_TTL_S
    max_crashes: int = defaults.MAX_CRASHES
    max_failure_rate: float = defaults.MAX_FAILURE_RATE
    min_failure_sample: int = defaults.MIN_FAILURE_SAMPLE
    job_ttl_days: float = defaults.JOB_TTL_DAYS

    @property
    def job_ttl_s(self) -> int:
        """`job_ttl_days` in whole seconds (at least 1 unless 0: keep forever)."""
        return 0 if self.job_ttl_days == 0 else max(1, round(self.job_ttl_days * 86400))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``env`` (default ``os.environ``), then ``overrides`` that are not None.

        Raises:
            ConfigError: a variable has a value of the wrong kind or out of range.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, key, convert in _ENV:
            raw = env.get(key)
            if raw is None or raw == "":
                continue
            try:
                values[name] = convert(raw)
            except ValueError as exc:
                raise ConfigError(f"{key}={raw!r} is invalid: {exc}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise `ConfigError` on values out of range."""
        for name in (
            "batch_size",
            "concurrency",
            "task_time_limit_s",
            "forward_batch",
            "max_pixels",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics_port must be 0 (off) to 65535, got {self.metrics_port}")
        if not 1 <= self.exporter_port <= 65535:
            raise ConfigError(f"exporter_port must be 1 to 65535, got {self.exporter_port}")
        if self.cv_threads < 0:
            raise ConfigError(f"cv_threads must be >= 0 (0: automatic), got {self.cv_threads}")
        if self.pin_cpus not in defaults.PIN_MODES:
            raise ConfigError(
                f"pin_cpus must be one of {', '.join(defaults.PIN_MODES)}, got {self.pin_cpus!r}"
            )
        if self.engine and self.engine not in defaults.ENGINES:
            raise ConfigError(
                f"engine must be one of {', '.join(defaults.ENGINES)} (or empty), got "
                f"{self.engine!r}"
            )
        if self.segment_seconds <= 0:
            raise ConfigError(f"segment_seconds must be positive, got {self.segment_seconds}")
        if self.retry_backoff_s < 0:
            raise ConfigError(f"retry_backoff_s must be >= 0, got {self.retry_backoff_s}")
        if not 0.0 < self.holdout < 1.0:
            raise ConfigError(f"holdout must be a share between 0 and 1, got {self.holdout}")
        if self.parity_atol <= 0:
            raise ConfigError(f"parity_atol must be > 0, got {self.parity_atol}")
        if self.local_max_items < 0:
            raise ConfigError(f"local_max_items must be >= 0, got {self.local_max_items}")
        if self.redis_wait_s < 0:
            raise ConfigError(f"redis_wait_s must be >= 0, got {self.redis_wait_s}")
        if self.lease_ttl_s < 1:
            raise ConfigError(f"lease_ttl_s must be at least 1 s, got {self.lease_ttl_s}")
        if self.max_crashes < 1:
            raise ConfigError(f"max_crashes must be at least 1, got {self.max_crashes}")
        if not 0 < self.max_failure_rate <= 1:
            raise ConfigError(
                f"max_failure_rate must be in (0, 1], e.g. 0.2 for 20%, got {self.max_failure_rate}"
            )
        if self.job_ttl_days < 0:
            raise ConfigError(
                f"job_ttl_days must be >= 0 (0: keep per-item state), got {self.job_ttl_days}"
            )
        if self.min_failure_sample < 1:
            raise ConfigError(
                f"min_failure_sample must be at least 1, got {self.min_failure_sample}"
            )
        if self.max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {self.max_retries}")
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(
                "redis URL must start with redis://, rediss:// or unix://, got "
                f"{redact_url(self.redis_url)!r}"
            )

    @property
    def visibility_timeout_s(self) -> int:
        """Redelivery timeout of unacknowledged tasks: twice the task time limit, so a task that
        is still running is never handed to a second worker."""
        return 2 * self.task_time_limit_s

    def registry(self) -> Registry:
        """The model registry: built-in entries plus ``models_file`` (by default the
        ``models.toml`` that ``framefleet models add`` keeps in the model directory)."""
        return load_registry(self.registry_file())

    def registry_file(self) -> Path | None:
        """The user's registry file: ``models_file``, else ``model_dir/models.toml`` if there."""
        added = self.added_models_file()
        return self.models_file or (added if added.is_file() else None)

    def added_models_file(self) -> Path:
        """Where ``models add`` writes entries: ``models_file``, else ``model_dir/models.toml``."""
        return self.models_file or self.model_dir / defaults.MODELS_FILE

    def with_(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied (None values ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a child process."""
        env = {}
        for name, key, _ in _ENV:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool):
                env[key] = "1" if value else "0"
            else:
                env[key] = ",".join(value) if isinstance(value, tuple) else str(value)
        return env


def _names(raw: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in raw.split(",") if n.strip())


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected 1 or 0 (true/false, yes/no, on/off)")


def _path(raw: str) -> Path:
    return Path(raw).expanduser()


_ENV: list[tuple[str, str, Any]] = [
    ("redis_url", "FRAMEFLEET_REDIS_URL", str),
    ("model_dir", "FRAMEFLEET_MODEL_DIR", _path),
    ("models_file", "FRAMEFLEET_MODELS", _path),
    ("batch_size", "FRAMEFLEET_BATCH_SIZE", int),
    ("worker_models", "FRAMEFLEET_WORKER_MODELS", _names),
    ("concurrency", "FRAMEFLEET_CONCURRENCY", int),
    ("task_time_limit_s", "FRAMEFLEET_TASK_TIME_LIMIT", int),
    ("max_retries", "FRAMEFLEET_MAX_RETRIES", int),
    ("retry_backoff_s", "FRAMEFLEET_RETRY_BACKOFF", float),
    ("cv_threads", "FRAMEFLEET_CV_THREADS", int),
    ("pin_cpus", "FRAMEFLEET_PIN_CPUS", str),
    ("fsync", "FRAMEFLEET_FSYNC", _flag),
    ("engine", "FRAMEFLEET_ENGINE", str),
    ("forward_batch", "FRAMEFLEET_FORWARD_BATCH", int),
    ("metrics_port", "FRAMEFLEET_METRICS_PORT", int),
    ("exporter_port", "FRAMEFLEET_EXPORTER_PORT", int),
    ("holdout", "FRAMEFLEET_HOLDOUT", float),
    ("parity_atol", "FRAMEFLEET_PARITY_ATOL", float),
    ("local_max_items", "FRAMEFLEET_LOCAL_MAX_ITEMS", int),
    ("segment_seconds", "FRAMEFLEET_SEGMENT_SECONDS", float),
    ("max_pixels", "FRAMEFLEET_MAX_PIXELS", int),
    ("redis_wait_s", "FRAMEFLEET_REDIS_WAIT_S", float),
    ("lease_ttl_s", "FRAMEFLEET_LEASE_TTL_S", float),
    ("max_crashes", "FRAMEFLEET_MAX_CRASHES", int),
    ("max_failure_rate", "FRAMEFLEET_MAX_FAILURE_RATE", float),
    ("min_failure_sample", "FRAMEFLEET_MIN_FAILURE_SAMPLE", int),
    ("job_ttl_days", "FRAMEFLEET_JOB_TTL_DAYS", float),
]


def env_name(setting: str) -> str:
    """The environment variable that sets the field ``setting`` (for the CLI's options, so a flag
    and the variable `Settings.from_env` reads can never disagree).

    Raises:
        KeyError: no variable sets ``setting``.
    """
    return next(key for name, key, _ in _ENV if name == setting)
