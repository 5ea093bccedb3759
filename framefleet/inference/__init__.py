"""The inference library: engines, model adapters, image and video I/O, annotation, the per-item
pipeline. No Celery, no Redis, no job state."""
