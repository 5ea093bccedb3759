"""Launchers for the local servers framefleet's demo and tests run (SeaweedFS S3, Redis)."""
