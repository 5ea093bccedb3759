"""The core: settings, errors, messages, storage, results, job state. No OpenCV, no Celery."""
