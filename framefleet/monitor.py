"""Entry point for Flower: ``celery -A framefleet.monitor flower``.

A producer-side app (no tasks, no OpenCV): Flower needs only the broker and the task events the
workers send. Settings come from the FRAMEFLEET_* environment variables, read at import because
``celery -A`` needs a module-level app.
"""

from __future__ import annotations

from framefleet.core.settings import Settings
from framefleet.queue import create_app

app = create_app(Settings.from_env())
