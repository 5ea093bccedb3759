"""The job report: ``_framefleet/report.html`` beside a job's outputs.

Written with summary.json and failures.jsonl when a job completes (by whoever completes it), and
on demand by ``framefleet report JOB``. Imports neither OpenCV nor Celery: thumbnails are made
with Pillow from the annotated outputs, charts are SVG drawn by pygal, the page is a jinja2
template.

Example:
    >>> uri = write_reports(JobStore.from_url("redis://127.0.0.1:6379/0"), job_id)
    >>> uri
    's3://results/run1/_framefleet/report.html'
"""

from __future__ import annotations

import logging

from framefleet.core.jobrecord import JobRecord
from framefleet.core.outputs import report_key
from framefleet.core.storage import Storage, open_storage
from framefleet.report.data import ReportData, collect
from framefleet.report.page import render_html
from framefleet.report.summary import write_report
from framefleet.state.jobs import JobStore

log = logging.getLogger(__name__)

REPORT_PAGE = "report.html"
"""Name of the page under the output root's report folder."""


def build_report(jobs: JobStore, job_id: str, dst: Storage | None = None) -> str:
    """The HTML report of ``job_id`` (outputs read from ``dst``, default the job's output).

    Raises:
        JobNotFound: no such job. BrokerError: Redis unreachable.
    """
    record = jobs.get(job_id)
    return render_html(collect(jobs, job_id, dst or open_storage(record.output_uri)))


def write_reports(jobs: JobStore, job_id: str) -> str:
    """Write summary.json, failures.jsonl and report.html of ``job_id``; return the page's URI.

    The summary files come first: a page that cannot be built (an unreachable output store)
    must not cost the machine-readable report.
    """
    return write_page(jobs, write_report(jobs, job_id))


def write_page(jobs: JobStore, record: JobRecord) -> str:
    """Write report.html of the job of ``record`` (its summary files written already, as
    `stop_job` does); return the page's URI."""
    dst = open_storage(record.output_uri)
    dst.write_bytes(report_key(REPORT_PAGE), build_report(jobs, record.job_id, dst).encode())
    return dst.uri_for(report_key(REPORT_PAGE))


__all__ = [
    "REPORT_PAGE",
    "ReportData",
    "build_report",
    "collect",
    "render_html",
    "write_page",
    "write_reports",
]
