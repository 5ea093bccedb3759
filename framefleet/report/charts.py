"""The report's charts, drawn by pygal as inline SVG: no script, no network, readable in any
browser and in the page's source.

pygal is a kept library that renders charts server-side to SVG; a JS chart library would have to
be inlined (hundreds of kB) and executed before anything shows.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import pygal
from pygal.style import Style

# pygal puts an import hook for its map plugins (pygal.maps.*) at the front of sys.meta_path; it
# lacks find_spec, so every later import in the process warns (ImportWarning) and pays a detour.
# We draw no maps: take it out.
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "PluginImportFixer"]

MAX_CLASSES = 20
"""Classes drawn in the detections chart; the rest are summed into "other"."""

TIME_BINS = 40
"""Bars of the throughput chart at most."""

_STYLE = Style(
    background="transparent",
    plot_background="transparent",
    foreground="#334155",
    foreground_strong="#0f172a",
    foreground_subtle="#e2e8f0",
    colors=("#2563eb", "#f59e0b", "#10b981", "#ef4444"),
    font_family="system-ui, -apple-system, 'Segoe UI', sans-serif",
    label_font_size=12,
    major_label_font_size=12,
    value_font_size=11,
    title_font_size=14,
    legend_font_size=12,
)


def _common() -> dict[str, object]:
    # js=[]: pygal would otherwise add a <script src> from its website for tooltips.
    return {
        "style": _STYLE,
        "js": [],
        "disable_xml_declaration": True,
        "explicit_size": False,
        "show_legend": False,
        "margin": 8,
    }


def detections_chart(classes: dict[str, int]) -> str:
    """A horizontal bar per class, most detections on top; an SVG element as text."""
    ranked = sorted(classes.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(ranked) > MAX_CLASSES:
        rest = sum(n for _, n in ranked[MAX_CLASSES - 1 :])
        ranked = [*ranked[: MAX_CLASSES - 1], ("other", rest)]
    ranked.reverse()  # pygal draws the first label at the bottom
    chart = pygal.HorizontalBar(
        **_common(),
        width=640,
        height=max(160, 28 * len(ranked) + 40),
        print_values=True,
        show_y_guides=False,
    )
    chart.x_labels = [name for name, _ in ranked]
    chart.add("detections", [n for _, n in ranked])
    return str(chart.render(is_unicode=True))


def throughput_chart(
    completions: Sequence[tuple[float, int]], start: float, end: float, scale: float
) -> str:
    """Items/s (bars) and images/s (line, when videos make them differ) over the job's run.

    Args:
        completions: (finished at, images in the item) of each sampled result document.
        start, end: the job's first outcome and its end, epoch seconds.
        scale: items each sampled document stands for (done ÷ sampled; 1 when all were read).
    """
    span = max(end - start, 1.0)
    bins = max(1, min(TIME_BINS, len(completions), math.ceil(span)))
    width_s = span / bins
    items = [0.0] * bins
    images = [0.0] * bins
    for at, frames in completions:
        i = min(bins - 1, max(0, int((at - start) / width_s)))
        items[i] += scale / width_s
        images[i] += frames * scale / width_s
    options = {**_common(), "show_legend": images != items}
    chart = pygal.Bar(
        **options,
        width=640,
        height=260,
        legend_at_bottom=True,
        x_label_rotation=0,
        show_minor_x_labels=False,
        y_title="per second",
    )
    chart.x_labels = [_offset(i * width_s, width_s) for i in range(bins)]
    chart.x_labels_major = chart.x_labels[:: max(1, bins // 8)]
    chart.add("items/s", [round(v, 2) for v in items])
    if images != items:
        chart.add("images/s", [round(v, 2) for v in images], secondary=False)
    return str(chart.render(is_unicode=True))


def _offset(seconds: float, step_s: float) -> str:
    """Time since the start: ``2.5s`` for short runs, ``1:05`` or ``2:00:10`` for longer ones."""
    if step_s < 1:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    seconds = round(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
