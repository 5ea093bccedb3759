"""The job report page: `ReportData` rendered by a jinja2 template into one self-contained HTML
file (inline CSS, SVG charts and JPEG thumbnails; no fetch from the network)."""

from __future__ import annotations

import time

from jinja2 import Environment, PackageLoader, select_autoescape

from framefleet.report.charts import detections_chart, throughput_chart
from framefleet.report.data import VIDEOS, ReportData

_ENV = Environment(
    loader=PackageLoader("framefleet.report", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _utc(epoch: float | None) -> str:
    return "" if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def render_html(data: ReportData) -> str:
    """The report page of ``data`` as HTML text."""
    record = data.record
    start = record.started_at or record.created_at
    end = record.finished_at or max((at for at, _ in data.completions), default=start)
    scale = record.done / data.sampled if data.sampled else 1.0
    return _ENV.get_template("report.html.j2").render(
        r=record,
        d=data,
        created=_utc(record.created_at),
        finished=_utc(record.finished_at),
        generated=_utc(time.time()),
        elapsed=_duration(record.elapsed_s()),
        detections=sum(record.classes.values()),
        classes_svg=detections_chart(record.classes) if record.classes else "",
        throughput_svg=throughput_chart(data.completions, start, end, scale),
        max_videos=VIDEOS,
    )
