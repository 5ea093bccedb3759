"""The producer: lists a folder or bucket prefix and enqueues its media as jobs (no OpenCV)."""
