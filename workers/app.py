"""Entry point for people who run Celery their own way: ``celery -A workers.app worker``.

Settings come from the FRAMEFLEET_* environment variables (see framefleet.core.settings); this
is the one module that reads them at import time, because ``celery -A`` needs a module-level app.
"""

from __future__ import annotations

from framefleet.core.settings import Settings
from workers.worker import build_app

app = build_app(Settings.from_env())
