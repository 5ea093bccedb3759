"""The job report written next to the outputs when a job completes.

``_framefleet/summary.json`` is the job record (counts, timings, classes); ``failures.jsonl`` has
one JSON object per failed item: ``{"item", "error", "message", "worker"}``, sorted by item.
Whoever completes the job writes them (exactly one caller learns that it did); rewriting them is
harmless, so `framefleet status --write-report` can redo it.
"""

from __future__ import annotations

import json

from framefleet.core.jobstate import JobRecord, JobStore
from framefleet.core.outputs import report_key
from framefleet.core.storage import open_storage


def write_report(jobs: JobStore, job_id: str) -> JobRecord:
    """Write the summary and failure list of ``job_id`` under its output root; return the record."""
    record = jobs.get(job_id)
    dst = open_storage(record.output_uri)
    failures = sorted(jobs.failures(job_id))
    lines = "".join(json.dumps({"item": item, **reason}) + "\n" for item, reason in failures)
    dst.write_bytes(report_key("failures.jsonl"), lines.encode())
    dst.write_bytes(report_key("summary.json"), json.dumps(record.to_json(), indent=2).encode())
    return record
