"""framefleet: OpenCV deep-learning models over whole buckets, on a Celery fleet."""

__version__ = "0.1.0"
