"""The ``framefleet`` command line: one module per concern, all on the group in `base`.

Every option has an environment variable. Worker, inference and demo code is imported inside
the commands that need it, so producer-side commands never import OpenCV.
"""

from framefleet.cli import (  # noqa: F401  (registers commands)
    demo,
    evaluate,
    finetune,
    fleet,
    jobs,
    models,
    models_add,
    ops,
    report,
    results,
    retry,
    run,
    submit,
    train,
    tune,
    verify,
)
from framefleet.cli.base import main

__all__ = ["main"]
