"""The run report as one self-contained HTML page: headline, per-host timeline, charts, table.

Pure: a Report (the numbers ``--report`` writes, from the same code) and the run's records (as
dicts) in, one HTML string out. Inline CSS and SVG and a few lines of script to sort the table;
no external resource, so the page opens offline, from a mail or a CI artifact.

>>> page = render_html(report, records); Path("run.html").write_text(page)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from urlfleet.report.cpu import CpuUse, cpu_verdict
from urlfleet.report.runstats import status_words
from urlfleet.report.summary import Report
from urlfleet.report.svgcharts import column_chart, count_bars, legend_html, timeline_svg
from urlfleet.report.timeline import Lane, Timeline, build_timeline, histogram, thread_use

POLITENESS = "politeness towards "
CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 6px}h2{font-size:17px;margin:28px 0 6px}
.figures{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0}
.figure{border:1px solid #ccc;border-radius:6px;padding:6px 12px;min-width:90px}
.figure b{display:block;font-size:22px}.figure span{color:#555;font-size:12px}
.why{font-size:16px;background:#fff6e0;border-left:5px solid #E69F00;padding:8px 12px}
svg text{font-size:11px;fill:#333}.lane-name{font-weight:600}.lane-note{fill:#666}
.pace .lane-name{fill:#000;font-weight:800}.pace .band{fill:#e6f0fa;stroke:#0072B2;stroke-width:2}
.band{fill:#f7f7f7}.grid{stroke:#ddd}.limit{stroke:#0072B2;stroke-dasharray:4 3}
.pause{fill:#E69F00;opacity:.5;stroke:#8a5a00;stroke-dasharray:3 2}
.pause-note{font-weight:700;fill:#5c3700;paint-order:stroke;stroke:#fff;stroke-width:3px}
.resume{stroke:#000;stroke-width:1.5;stroke-dasharray:6 3}
.serial{fill:#e8eef7}.phase{fill:#0b4f8a;font-style:italic}.retried{stroke:#000;stroke-width:1}
.col{fill:#0072B2}.mark{stroke:#D55E00;stroke-width:1.5}
.key{margin-right:16px;white-space:nowrap}.key svg{vertical-align:middle}
.charts{display:flex;flex-wrap:wrap;gap:24px}
table.hosts{border-collapse:collapse}table.hosts td,table.hosts th{padding:2px 8px;
text-align:right;border-bottom:1px solid #eee}table.hosts td:first-child{text-align:left}
table.hosts th{cursor:pointer;background:#f0f0f0}.breakdown th{text-align:left;padding-right:8px}
.note{color:#555}
"""
SORT_SCRIPT = """
document.querySelectorAll("table.hosts th").forEach((th, i) => th.onclick = () => {
  const body = th.closest("table").tBodies[0], up = th.dataset.up !== "1";
  th.dataset.up = up ? "1" : "0";
  const key = r => { const t = r.cells[i].textContent, n = parseFloat(t);
                     return isNaN(n) ? t : n; };
  [...body.rows].sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (up ? 1 : -1))
    .forEach(r => body.appendChild(r));
});
"""


def render_html(report: Report, records: Sequence[Mapping[str, Any]], *,
                cpu: CpuUse | None = None, title: str = "urlfleet run",
                sampled_of: int | None = None,
                resumed_at: Sequence[float] = ()) -> str:  # fmt: skip
    """The whole page for a run: its Report and its records (dicts, as in the JSONL).

    ``cpu``: what the client's CPU did, measured in the run (a records file does not say);
    ``sampled_of`` says how many URLs ``records`` is a sample of (see RecordSample);
    ``resumed_at`` where each resumed run of a records file begins on its time axis.
    """
    timeline = build_timeline(records)
    pace = pace_setter(report, timeline)
    sections = [
        f"<h1>{escape(title)}</h1>",
        headline_html(report, timeline, cpu, pace),
        "<h2>Per-host timeline: where the time went</h2>",
        _sample_note(len(records), sampled_of),
        _timing_notes(len(records), timeline, resumed_at),
        _timeline_section(report, timeline, pace, resumed_at),
        "<h2>Throughput, requests in flight and threads busy</h2>",
        _flow_section(timeline, report.jobs, _serial_until(report)),
        "<h2>Latency</h2>",
        _latency_section(report, records),
        "<h2>Outcomes</h2>",
        _outcome_section(report, timeline),
        "<h2>Hosts (click a column to sort)</h2>",
        host_table_html(report, timeline),
    ]
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>'
            f"{escape(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(sections)
            + f"\n<script>{SORT_SCRIPT}</script></body></html>\n")  # fmt: skip


def pace_setter(report: Report, timeline: Timeline) -> str | None:
    """The host that set the pace: the report's bottleneck host, else the lane that ended last."""
    if report.bottleneck and report.bottleneck.startswith(POLITENESS):
        return report.bottleneck.removeprefix(POLITENESS)
    if report.bottleneck or len(timeline.lanes) < 2:
        return None  # the threads (or nothing we can name) set the pace
    return max(timeline.lanes, key=lambda lane: lane.last).name


def bottleneck_words(report: Report, cpu: CpuUse | None, pace: str | None,
                     timeline: Timeline | None = None) -> str:  # fmt: skip
    """What held the run back, in a sentence: the threads, a named host, or the client's CPU
    (then whether more processes would help)."""
    verdict = None if cpu is None else cpu_verdict(cpu, ideal_s=report.ideal_s,
                                                   bottleneck=report.bottleneck)  # fmt: skip
    if verdict is not None and verdict.bound:
        return f"{verdict.line[0].upper()}{verdict.line[1:]}; more threads cannot help."
    if pace is not None:
        row = next((r for r in report.hosts if r.host == pace), None)
        paused = f", and it was paused {row.paused_s:.1f} s (429/503, Retry-After)" if (
            row and row.paused_s) else ""  # fmt: skip
        paused += _when(pause_spans(timeline, pace)) if paused else ""
        limits = f"at most {report.per_host or '?'} requests in flight there"
        limits += f", {report.delay:g} s apart" if report.delay else ""
        return (f"Politeness towards {pace} set the pace: {limits}{paused}. "
                "Its lane is marked below; the other hosts finished earlier.")  # fmt: skip
    if report.bottleneck:
        return (f"The thread count ({report.bottleneck}): every thread was busy waiting on "
                "servers, so more threads (-j) would go faster.")  # fmt: skip
    return (
        "Not known: the records do not say the run's thread count and --per-host; give "
        "them (urlfleet report RECORDS -j N --per-host P) to work it out."
    )


def pause_spans(timeline: Timeline | None, host: str) -> list[tuple[float, float]]:
    """When ``host``'s URLs waited to be retried (drawn shaded), in seconds from the start."""
    lane: Lane | None = next((ln for ln in timeline.lanes if ln.name == host), None) if (
        timeline) else None  # fmt: skip
    if lane is None:
        return []
    return [(b.start, b.end) for b in lane.bars if b.attempts > 1 or b.outcome == "throttled"]


def _when(spans: list[tuple[float, float]]) -> str:
    if not spans:
        return ""
    start, end = min(s for s, _ in spans), max(e for _, e in spans)
    return f", between {start:.1f} s and {end:.1f} s (shaded in its lane)"


def _figure(value: str, label: str, ident: str) -> str:
    return f'<div class="figure" id="{ident}"><b>{escape(value)}</b><span>{label}</span></div>'


def headline_html(report: Report, timeline: Timeline, cpu: CpuUse | None,
                  pace: str | None) -> str:  # fmt: skip
    """URLs, ok, failed, wall time, speedup, ideal and efficiency, and the bottleneck in words."""
    wall = report.wall_s
    unknown = "not in these records" if report.jobs is None else "-"
    figures = [
        _figure(str(report.urls), "URLs", "urls"),
        _figure(str(report.ok), "ok", "ok"),
        _figure(str(report.failed), "failed", "failed"),
        _figure(
            f"{wall:.2f} s" if wall is not None else "not in these records", "wall time", "wall"
        ),  # fmt: skip
        _figure(
            f"{report.speedup:.1f}×" if report.speedup else "not measured",
            "speedup over one at a time",
            "speedup",
        ),  # fmt: skip
        _figure(
            f"{report.ideal_s:.2f} s" if report.ideal_s is not None else unknown,
            "ideal time",
            "ideal",
        ),  # fmt: skip
        _figure(
            f"{report.efficiency:.0%}" if report.efficiency is not None else unknown,
            "efficiency (ideal / actual)",
            "efficiency",
        ),  # fmt: skip
    ]
    serial = ""
    if report.serial_s_per_url and report.threaded_s_per_url:
        serial = (f'<p class="note">Speedup measured in this run: {report.serial_sample} URLs '
                  f"one at a time took {report.serial_s_per_url:.4f} s each; the rest on "
                  f"{report.jobs} threads took {report.threaded_s_per_url:.4f} s each.</p>"
                  )  # fmt: skip
    return (f'<div class="figures">{"".join(figures)}</div>'
            f'<p class="why" id="bottleneck"><b>Bottleneck:</b> '
            f"{escape(bottleneck_words(report, cpu, pace, timeline))}</p>{serial}")  # fmt: skip


def _sample_note(drawn: int, seen: int | None) -> str:
    if seen is None or seen <= drawn:
        return ""
    return (f'<p class="note">Drawn from a fair sample of {drawn} of the {seen} URLs; the '
            "figures at the top and the table count them all.</p>")  # fmt: skip


def _timing_notes(drawn: int, timeline: Timeline, resumed_at: Sequence[float]) -> str:
    notes = []
    if resumed_at:
        notes.append(f"These records come from {len(resumed_at) + 1} runs (interrupted, then "
                     "resumed), each timed from its own start: they are drawn end to end, and "
                     "the wall time is the sum of the runs' (the time between them is not in "
                     "the records).")  # fmt: skip
    untimed = drawn - timeline.timed
    if timeline.timed and untimed:
        notes.append(f"{untimed} of the {drawn} URLs do not say when they started (no request "
                     "was made, or older records without started_s): they are counted above "
                     "but not drawn.")  # fmt: skip
    return "".join(f'<p class="note" id="timing-note">{note}</p>' for note in notes)


def _timeline_section(report: Report, timeline: Timeline, pace: str | None,
                      resumed_at: Sequence[float] = ()) -> str:  # fmt: skip
    if not timeline.timed:
        return ('<p class="note" id="no-timeline">No timeline: these records do not say when '
                "each URL started (no started_s).</p>")  # fmt: skip
    return (f"<p>{legend_html()}</p><p class=\"note\">One lane per host, busiest first; one bar"
            " per URL from its first request to its last byte; stacked bars were in flight "
            "together.</p>"
            + timeline_svg(timeline, per_host=report.per_host, delay=report.delay,
                           pace_setter=pace, serial_until=_serial_until(report),
                           paused=_paused_hosts(report), resumed_at=resumed_at))  # fmt: skip


def _paused_hosts(report: Report) -> frozenset[str]:
    return frozenset(row.host for row in report.hosts if row.paused_s)


def _serial_until(report: Report) -> float | None:
    if not report.serial_sample or report.serial_s_per_url is None:
        return None
    return report.serial_sample * report.serial_s_per_url


def _flow_section(timeline: Timeline, threads: int | None, serial_until: float | None) -> str:
    if not timeline.timed:
        return '<p class="note">No timing in these records.</p>'
    span = timeline.span_s
    use = thread_use(timeline.in_flight, span_s=span, threads=threads,
                     since=serial_until or 0.0) if threads else None  # fmt: skip
    if use is None:
        words = (
            "Threads busy: not known, the records do not say how many threads the run "
            "had (urlfleet report RECORDS -j N says it). URLs in flight are shown."
        )
    else:
        part = "after the serial sample" if serial_until else "over the run"
        words = (f"Threads busy {part}: at most {use.busy:.0%} of its {use.threads} threads "
                 f"(at least {use.idle_s:.1f} thread-seconds idle). Each URL in flight holds a "
                 "thread, except while it waits to be retried; the dashed line is the thread "
                 "count, and the gap below it is idle threads.")  # fmt: skip
    ceiling = (f"{threads} threads", float(threads)) if threads else None
    return (f'<p id="threads">{escape(words)}</p><div class="charts">'
            + column_chart(timeline.throughput, span_s=span, label="URLs finished per second")
            + column_chart(timeline.in_flight, span_s=span, ceiling=ceiling,
                           label="URLs in flight" + (f" against {threads} threads"
                                                     if threads else ""))
            + "</div>")  # fmt: skip


def _latency_section(report: Report, records: Sequence[Mapping[str, Any]]) -> str:
    if report.latency is None:
        return '<p class="note">No latencies: no URL finished.</p>'
    lat = report.latency
    top = max(lat.p99_s * 1.5, lat.p50_s * 2) or lat.max_s or 1.0
    counts = histogram([float(r.get("elapsed_s") or 0.0) for r in records], top=top)
    marks = {f"p50 {lat.p50_s:.3f}": lat.p50_s, f"p90 {lat.p90_s:.3f}": lat.p90_s,
             f"p99 {lat.p99_s:.3f}": lat.p99_s}  # fmt: skip
    ttfb = report.ttfb
    first_byte = (f"time to first byte: {ttfb.words()}" if ttfb else
                  "time to first byte: not in these records (no ttfb_s)")  # fmt: skip
    return (f'<p id="latency">Per URL (first request to last byte, retries included): '
            f"{lat.words()}.<br>{first_byte}.</p>"
            + column_chart([float(c) for c in counts], span_s=top, marks=marks,
                           label=f"URLs by latency (last column: ≥ {top:.3g} s)"))  # fmt: skip


def _outcome_section(report: Report, timeline: Timeline) -> str:
    statuses = sorted(report.statuses.items(), key=lambda kv: -kv[1])
    kinds = sorted(report.failures.items(), key=lambda kv: -kv[1])
    retries = [
        (f"{n} attempt{'s' if n != 1 else ''}", c) for n, c in sorted(timeline.attempts.items())
    ]
    return ('<div class="charts"><div><h3>Status</h3>'
            f'<p id="statuses">{escape(status_words(report.statuses))}</p>'
            f"{count_bars(statuses)}</div>"
            f"<div><h3>Failures by kind</h3>{count_bars(kinds) if kinds else 'none'}</div>"
            f"<div><h3>Attempts per URL</h3>{count_bars(retries)}</div></div>")  # fmt: skip


def host_table_html(report: Report, timeline: Timeline) -> str:
    """The busiest hosts, with the columns of the terminal's table and first and last request."""
    spans = {lane.name: lane for lane in timeline.lanes}
    head = ("host", "requests", "ok", "failed", "429/503", "paused s", "p50 s", "p95 s", "req/s",
            "first s", "last s")  # fmt: skip
    rows = []
    for r in report.hosts:
        lane = spans.get(r.host)
        cells = (r.host, r.requests, r.ok, r.failed, r.throttled, f"{r.paused_s:.1f}",
                 _s(r.p50_s), _s(r.p95_s), f"{r.rate:.1f}",
                 _s(lane.first if lane else None), _s(lane.last if lane else None))  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
    return (f'<table class="hosts"><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table>")  # fmt: skip


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
