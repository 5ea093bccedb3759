"""The ``framefleet`` group: global options, named exit codes, and the error-to-exit-code wrapper
every command uses. Commands live one module per concern beside this one."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from framefleet.core import defaults
from framefleet.core.errors import (
    BrokerError,
    ConfigError,
    InputError,
    ModelError,
    PipelineError,
    StateError,
    StorageError,
)
from framefleet.core.settings import Settings, env_name

EXIT_OK = 0
EXIT_ITEMS_FAILED = 1  # the job ran, and some items failed or were cancelled (submit --wait)
EXIT_CONFIG = 3  # bad option, registry file, unknown model or job id
EXIT_STORAGE = 4  # input or output storage unreachable, missing bucket
EXIT_BROKER = 5  # Redis unreachable
EXIT_MODEL = 6  # model files missing, wrong sha256, not loadable
EXIT_UNHEALTHY = 7  # healthcheck: the local metrics endpoint does not answer
EXIT_DISAGREE = 8  # models verify: the engines disagree beyond the stated tolerance
EXIT_INTERRUPTED = 130  # Ctrl-C: the command stopped, the job goes on (128 + SIGINT)

_EXIT_FOR: list[tuple[type[PipelineError], int]] = [
    # cause -> exit code, first match wins (the one place errors become exit codes)
    (ConfigError, EXIT_CONFIG),  # a bad option, registry file, unknown model
    (InputError, EXIT_CONFIG),  # an input with no media, a data set that cannot be used
    (StorageError, EXIT_STORAGE),
    (BrokerError, EXIT_BROKER),  # before StateError: Redis itself is gone
    (StateError, EXIT_CONFIG),  # an unknown job id, a job that ended, a busy producer
    (ModelError, EXIT_MODEL),
]

HELP_EPILOG = """\b
Examples:
  framefleet demo                                   # everything locally, on sample media
  framefleet worker --concurrency 2 --models yolox-nano,yunet
  framefleet submit s3://photos/2026/ --model yolox-nano --out s3://results/run1/ --wait
  framefleet status 20261122-050000-a1b2c3 --watch
\b
Exit codes: 0 ok, 1 some items failed or the job was cancelled, 3 bad configuration (unknown
model or job, no media, --out inside the input, cancel of an ended job), 4 storage
unreachable, 5 Redis unreachable, 6 model files missing or invalid, 7 unhealthy
(healthcheck), 8 engines disagree (models verify), 130 Ctrl-C (detached; the job goes on).
"""

F = TypeVar("F", bound=Callable[..., Any])


def setting_option(
    *decls: str, setting: str, help: str, default: str | None = None, **kwargs: Any
) -> Callable[[F], F]:
    """An option that overrides the field ``setting`` of `Settings`: it reads the environment
    variable `Settings.from_env` reads, and its help ends with the setting's default (or
    ``default``, a description such as "number of cores"; "" shows none)."""
    shown = str(getattr(Settings(), setting)) if default is None else default
    return click.option(
        *decls,
        envvar=env_name(setting),
        show_envvar=True,
        help=f"{help} [default: {shown}]" if shown else help,
        **kwargs,
    )


def metrics_port_option(help_text: str) -> Callable[[F], F]:
    """``--metrics-port``, shared by `worker` and `healthcheck` so both read the same port."""
    return setting_option(
        "--metrics-port", setting="metrics_port", type=click.IntRange(0, 65535), help=help_text
    )


max_pixels_option = setting_option(
    "--max-pixels",
    setting="max_pixels",
    type=click.IntRange(1),
    help="Refuse images above this many pixels (width x height), read from the file's header "
    "before decoding.",
)
"""``--max-pixels``, shared by `worker` and `run`, which decode."""


def _exits(fn: F) -> F:
    """Turn framefleet errors into one clear line on stderr and a named exit code."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PipelineError as exc:
            code = next((c for t, c in _EXIT_FOR if isinstance(exc, t)), EXIT_CONFIG)
            click.echo(f"framefleet: {type(exc).__name__}: {exc}", err=True)
            sys.exit(code)

    return wrapper  # type: ignore[return-value]


class AnywhereGroup(click.Group):
    """A group whose own options may also follow the subcommand (``framefleet run ./photos
    --model-dir ../shared/models``, ``framefleet worker --redis-wait 5``): they are moved in front
    of it before parsing, unless the subcommand has an option of the same name."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self._hoist(ctx, list(args)))

    def _hoist(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_value: dict[str, bool] = {}
        for param in self.params:
            if isinstance(param, click.Option):
                for name in (*param.opts, *param.secondary_opts):
                    takes_value[name] = not (param.is_flag or param.count)
        at = 0  # find the subcommand: the first word that is not a group option or its value
        while at < len(args) and args[at].startswith("-"):
            at += 2 if takes_value.get(args[at], False) else 1
        if at >= len(args) or (command := self.get_command(ctx, args[at])) is None:
            return args
        own = {
            n
            for p in command.params
            for n in (*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ()))
        }
        head, tail, i = args[:at], [args[at]], at + 1
        while i < len(args):
            word = args[i]
            if word == "--":
                tail += args[i:]
                break
            name = word.split("=", 1)[0]
            if name in takes_value and name not in own:
                width = 2 if takes_value[name] and "=" not in word else 1
                head += args[i : i + width]
                i += width
                continue
            tail.append(word)
            i += 1
        return head + tail


@click.group(cls=AnywhereGroup, epilog=HELP_EPILOG)
@setting_option("--redis-url", setting="redis_url", help="Broker and job state.")
@setting_option(
    "--models-file",
    setting="models_file",
    type=click.Path(path_type=Path),
    help="Your own model registry (TOML), added to the built-in one.",
    default="",
)
@setting_option(
    "--model-dir",
    setting="model_dir",
    type=click.Path(path_type=Path),
    help="Where model files are found or downloaded to.",
)
@setting_option(
    "--redis-wait",
    "redis_wait_s",
    setting="redis_wait_s",
    type=click.FloatRange(0),
    help="Seconds workers, submit --wait and status --watch wait for an unreachable Redis "
    "(reconnecting with backoff) before exiting 5.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
@click.pass_context
@_exits
def main(
    ctx: click.Context,
    redis_url: str | None,
    models_file: Path | None,
    model_dir: Path | None,
    redis_wait_s: float | None,
    verbose: bool,
) -> None:
    """framefleet: run OpenCV deep-learning models over whole buckets of images and videos."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("botocore", "boto3", "urllib3"):  # credential and endpoint chatter
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    ctx.obj = Settings.from_env(
        redis_url=redis_url, models_file=models_file, model_dir=model_dir, redis_wait_s=redis_wait_s
    )


LEARN_MODULES = {
    "sklearn": "scikit-learn",
    "onnx": "onnx",
    "matplotlib": "matplotlib",
    "pycocotools": "pycocotools",
}
"""What the ``learn`` extra installs (finetune, train, evaluate), import name -> package."""


def require_extra(command: str, extra: str, modules: dict[str, str]) -> None:
    """Refuse ``command`` at once, naming the extra to install, if a module it needs is missing
    (not a traceback after the work: issue 30 item 2).

    Raises:
        ConfigError: one of ``modules`` (import name -> package) cannot be imported.
    """
    import importlib

    missing = []
    for module, package in modules.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise ConfigError(
            f"framefleet {command} needs {', '.join(missing)}, from the '{extra}' extra: in the "
            f"clone, pip install '.[{extra}]' (from a wheel: 'framefleet[{extra}]')"
        )


model_option = click.option(
    "--model",
    envvar="FRAMEFLEET_MODEL",
    show_envvar=True,
    help="Registry model name (default: the registry's default, yolox-nano).",
)
"""The ``--model`` option every command that runs or submits a model takes."""


def engine_option(help: str, envvar: str | None = None) -> Callable[[F], F]:
    """The ``--engine`` option (``cv2.dnn`` or ``onnxruntime``) with ``help`` for this command."""
    return click.option(
        "--engine",
        type=click.Choice(defaults.ENGINES),
        envvar=envvar,
        show_envvar=envvar is not None,
        help=f"{help} onnxruntime needs pip install 'framefleet[onnxruntime]'.",
    )


holdout_option = setting_option(
    "--holdout",
    setting="holdout",
    type=click.FloatRange(0.01, 0.99),
    help="Share held out per class.",
)
"""The ``--holdout`` option of the commands that train a model (finetune, train)."""

parity_option = setting_option(
    "--parity-atol",
    setting="parity_atol",
    type=click.FloatRange(min=0, min_open=True),
    help="Export tolerance on probabilities.",
)
"""The ``--parity-atol`` option of the commands that export a model (finetune, train)."""

local_max_items_option = setting_option(
    "--local-max-items",
    setting="local_max_items",
    type=click.IntRange(0),
    help="Larger sets go to the fleet.",
)
"""``--local-max-items``: how many items `evaluate` and `finetune` run in-process."""
