"""The HTML report's pictures, as inline SVG strings: the per-host timeline and small charts.

Colours are the Okabe-Ito palette (told apart by colour-blind readers), and every outcome has a
pattern or outline as well, named in the legend, so no reading depends on colour alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from urlfleet.report.timeline import Lane, Timeline

# Okabe-Ito: bluish green, sky blue, orange, vermillion, reddish purple; the fill, then the
# pattern that says the same thing without colour.
FILLS = {
    "ok": "#009E73",
    "retried": "#56B4E9",
    "throttled": "url(#p-throttled)",
    "failed": "url(#p-failed)",
    "cut-off": "url(#p-cutoff)",
}
LEGEND = (
    ("ok", "ok (solid green)"),
    ("retried", "ok after retries (blue, black outline)"),
    ("throttled", "429/503 at the end (orange stripes)"),
    ("failed", "failed (vermillion cross-hatch)"),
    ("cut-off", "cut off at --max-bytes (purple dots)"),
)
DEFS = (
    '<defs><pattern id="p-throttled" width="6" height="6" patternUnits="userSpaceOnUse" '
    'patternTransform="rotate(45)"><rect width="6" height="6" fill="#E69F00"/>'
    '<rect width="2" height="6" fill="#000" opacity=".55"/></pattern>'
    '<pattern id="p-failed" width="6" height="6" patternUnits="userSpaceOnUse">'
    '<rect width="6" height="6" fill="#D55E00"/><path d="M0 0L6 6M6 0L0 6" stroke="#000" '
    'stroke-width="1.2"/></pattern><pattern id="p-cutoff" width="5" height="5" '
    'patternUnits="userSpaceOnUse"><rect width="5" height="5" fill="#CC79A7"/>'
    '<circle cx="2.5" cy="2.5" r="1.2" fill="#000"/></pattern></defs>'
)
LABEL_W, PLOT_W, ROW_H, LANE_GAP, AXIS_H, PHASE_H = 260, 900, 9, 7, 24, 18
PAUSE_LABEL_W = 70  # pixels a shaded stretch needs before it is labelled in words
PAUSE_FILL = "#E69F00"  # shading behind a lane while a retry or pause was under way


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def timeline_svg(timeline: Timeline, *, per_host: int | None, delay: float | None,
                 pace_setter: str | None, serial_until: float | None = None,
                 paused: frozenset[str] = frozenset(),
                 resumed_at: Sequence[float] = ()) -> str:  # fmt: skip
    """The per-host timeline: a lane per host, a bar per URL, the time axis on top.

    ``serial_until`` marks the serial sample (URLs fetched one at a time) at the start;
    ``paused`` names the hosts that paused (429/503, Retry-After), whose waits say so;
    ``resumed_at`` marks where each resumed run of a records file begins.
    """
    scale = PLOT_W / timeline.span_s if timeline.span_s > 0 else 1.0
    parts, y = [], AXIS_H + PHASE_H
    for lane in timeline.lanes:
        rows = max(lane.rows, per_host or 1) if lane.hosts == 1 else lane.rows
        why = "paused: 429/503, Retry-After" if lane.name in paused else "retry wait"
        parts.append(_lane(lane, y, rows, scale, (per_host, delay), lane.name == pace_setter, why))
        y += rows * ROW_H + LANE_GAP
    width = LABEL_W + PLOT_W + 20
    return (f'<svg class="timeline" width="{width}" height="{y + 4}" role="img" '
            f'aria-label="per-host timeline" xmlns="http://www.w3.org/2000/svg">{DEFS}'
            f"{_axis(timeline.span_s, scale, y)}{_phases(serial_until, scale)}"
            f"{''.join(parts)}{_resumes(resumed_at, scale, y)}</svg>")  # fmt: skip


def _resumes(resumed_at: Sequence[float], scale: float, bottom: float) -> str:
    """A line where each resumed run begins: the time between the runs is not drawn."""
    return "".join(
        f'<line x1="{_n(LABEL_W + at * scale)}" x2="{_n(LABEL_W + at * scale)}" y1="{AXIS_H}" '
        f'y2="{_n(bottom)}" class="resume"/><text x="{_n(LABEL_W + at * scale + 4)}" '
        f'y="{AXIS_H + 12}" class="phase">resumed here (the time between runs is left out) '
        "▶</text>"
        for at in resumed_at
    )  # fmt: skip


def _phases(serial_until: float | None, scale: float) -> str:
    """Names the two phases of a --compare-serial run above the lanes."""
    if not serial_until:
        return ""
    x = LABEL_W + serial_until * scale
    return (f'<rect x="{LABEL_W}" y="{AXIS_H}" width="{_n(x - LABEL_W)}" height="{PHASE_H - 3}" '
            f'class="serial"/><text x="{LABEL_W + 4}" y="{AXIS_H + 12}" class="phase">one at a '
            f'time (the serial sample, for the speedup)</text><text x="{_n(x + 4)}" '
            f'y="{AXIS_H + 12}" class="phase">threaded: the rest, all at once ▶</text>'
            )  # fmt: skip


def _axis(span: float, scale: float, bottom: float) -> str:
    step = _tick_step(span)
    ticks, t = [], 0.0
    while t <= span + 1e-9:
        x = LABEL_W + t * scale
        ticks.append(f'<line x1="{_n(x)}" y1="{AXIS_H - 4}" x2="{_n(x)}" y2="{_n(bottom)}" '
                     f'class="grid"/><text x="{_n(x)}" y="{AXIS_H - 8}" '
                     f'text-anchor="middle">{t:g} s</text>')  # fmt: skip
        t = round(t + step, 6)
    return "".join(ticks)


def _tick_step(span: float) -> float:
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600):
        if span / step <= 12:
            return float(step)
    return 3600.0 * math.ceil(span / 12 / 3600)  # whole hours, still at most 12 ticks


def _lane(lane: Lane, y: float, rows: int, scale: float, limits: tuple[int | None, float | None],
          pace: bool, why: str) -> str:  # fmt: skip
    per_host, delay = limits
    height = rows * ROW_H
    name = escape(lane.name)
    label = f"{name} ◀ set the pace" if pace else name
    note = f"{lane.rows} in flight at most" + (f" (--per-host {per_host})" if per_host else "")
    if delay:
        note += f", {delay:g} s apart"
    out = [f'<g class="lane{" pace" if pace else ""}" data-host="{name}">'
           f"<title>{name}: {len(lane.bars) or 'many'} URLs, {note}</title>"
           f'<rect x="0" y="{_n(y - 2)}" width="{LABEL_W + PLOT_W}" height="{height + 4}" '
           f'class="band"/><text x="4" y="{_n(y + min(height, 2 * ROW_H) / 2 + 4)}" '
           f'class="lane-name">{label}</text>']  # fmt: skip
    if height >= 2 * ROW_H:
        out.append(f'<text x="4" y="{_n(y + 2 * ROW_H + 6)}" class="lane-note">{note}</text>')
    if per_host and lane.hosts == 1:
        limit = y + per_host * ROW_H
        out.append(f'<line x1="{LABEL_W}" x2="{LABEL_W + PLOT_W}" y1="{_n(limit)}" '
                   f'y2="{_n(limit)}" class="limit"/>')  # fmt: skip
    out.append(_dense(lane, y, height) if lane.dense is not None
               else _bars(lane, y, height, scale, why))  # fmt: skip
    return "".join(out) + "</g>"


def _bars(lane: Lane, y: float, height: float, scale: float, why: str) -> str:
    shade, bars, notes = [], [], []
    for bar in lane.bars:
        x, w = LABEL_W + bar.start * scale, max(0.6, (bar.end - bar.start) * scale)
        if bar.attempts > 1 or bar.outcome == "throttled":
            shade.append(f'<rect x="{_n(x)}" y="{_n(y - 2)}" width="{_n(w)}" '
                         f'height="{_n(height + 4)}" class="pause"/>')  # fmt: skip
            if w >= PAUSE_LABEL_W:
                notes.append(
                    f'<text x="{_n(x + w / 2)}" y="{_n(y + 9)}" text-anchor="middle" '
                    f'class="pause-note">{why}: {bar.attempts} attempts, '
                    f"{bar.start:.1f}–{bar.end:.1f} s</text>"
                )
        top = _n(y + bar.row * ROW_H + 1)
        bars.append(f'<rect x="{_n(x)}" y="{top}" width="{_n(w)}" height="{ROW_H - 2}" '
                    f'fill="{FILLS[bar.outcome]}"{_outline(bar.outcome)}/>')  # fmt: skip
    return "".join(shade) + "".join(bars) + "".join(notes)  # the words on top, readable


def _outline(outcome: str) -> str:
    # Retried URLs are outlined: a cue that does not depend on telling blue from green.
    return ' class="retried"' if outcome == "retried" else ""


def _dense(lane: Lane, y: float, height: float) -> str:
    counts = lane.dense or []
    top = max(counts, default=1) or 1
    width = PLOT_W / max(1, len(counts))
    return "".join(
        f'<rect x="{_n(LABEL_W + i * width)}" y="{_n(y)}" width="{_n(width)}" '
        f'height="{_n(height)}" fill="#009E73" opacity="{count / top:.2f}"/>'
        for i, count in enumerate(counts) if count
    )  # fmt: skip


def legend_html() -> str:
    """The outcome key, with swatches drawn like the bars."""
    items = "".join(
        f'<span class="key"><svg width="22" height="12">{DEFS if i == 0 else ""}'
        f'<rect width="22" height="12" fill="{FILLS[name]}"{_outline(name)}/></svg> {words}</span>'
        for i, (name, words) in enumerate(LEGEND)
    )
    return (f'{items}<span class="key"><svg width="22" height="12"><rect width="22" '
            f'height="12" class="pause"/></svg> shaded: a retry wait or pause (429/503, '
            f'Retry-After, backoff)</span><span class="key"><svg width="22" height="12">'
            f'<line x1="0" x2="22" y1="6" y2="6" class="limit"/></svg> the --per-host limit'
            "</span>")  # fmt: skip


def column_chart(values: list[float], *, span_s: float, label: str, width: int = 560,
                 height: int = 150, marks: dict[str, float] | None = None,
                 ceiling: tuple[str, float] | None = None) -> str:  # fmt: skip
    """A column per value across ``span_s`` (time, or latency), with labelled marker lines;
    ``ceiling`` (name, value) draws a labelled level the columns could reach."""
    top = max(max(values, default=0.0), ceiling[1] if ceiling else 0.0) or 1.0
    plot_h, step = height - 34, width / max(1, len(values))
    cols = "".join(
        f'<rect x="{_n(i * step)}" y="{_n(8 + plot_h - v / top * plot_h)}" '
        f'width="{_n(max(step - 0.5, 0.5))}" height="{_n(v / top * plot_h)}" class="col"/>'
        for i, v in enumerate(values) if v
    )  # fmt: skip
    lines = ""
    for i, (name, at) in enumerate((marks or {}).items()):
        x = min(width - 2, at / span_s * width) if span_s > 0 else 0
        lines += (f'<line x1="{_n(x)}" x2="{_n(x)}" y1="8" y2="{8 + plot_h}" class="mark"/>'
                  f'<text x="{_n(x + 3)}" y="{18 + 12 * i}">{name}</text>')  # fmt: skip
    if ceiling is not None:
        level = _n(8 + plot_h - ceiling[1] / top * plot_h)
        lines += (f'<line x1="0" x2="{width}" y1="{level}" y2="{level}" class="limit"/>'
                  f'<text x="{width - 2}" y="{_n(float(level) + 12)}" text-anchor="end">'
                  f"{escape(ceiling[0])}</text>")  # fmt: skip
    return (f'<svg width="{width}" height="{height}" class="chart" role="img" '
            f'aria-label="{escape(label)}"><line x1="0" x2="{width}" y1="{8 + plot_h}" '
            f'y2="{8 + plot_h}" class="grid"/>{cols}{lines}<text x="0" y="{height - 8}">0</text>'
            f'<text x="{width}" y="{height - 8}" text-anchor="end">{span_s:.3g} s</text>'
            f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle">{escape(label)}'
            f" (peak {top:.3g})</text></svg>")  # fmt: skip


def count_bars(counts: list[tuple[str, int]], *, css: str = "col") -> str:
    """Horizontal bars with their label and count written beside them (a breakdown)."""
    top = max((n for _, n in counts), default=1) or 1
    rows = "".join(
        f'<tr><th>{escape(label)}</th><td><svg width="240" height="12"><rect width="'
        f'{_n(max(1.0, n / top * 240))}" height="12" class="{css}"/></svg></td><td>{n}</td></tr>'
        for label, n in counts
    )
    return f'<table class="breakdown">{rows}</table>'
