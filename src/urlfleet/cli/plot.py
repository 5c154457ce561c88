"""The bench sweep drawn: bars in the terminal, or a PNG with matplotlib when it is installed."""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Any

from urlfleet.cli.sweep import Sweep
from urlfleet.report.cpu import CPU_BOUND


def text_chart(sweep: Sweep, width: int = 48) -> str:
    """Speedup per jobs value as bars on a log scale: ``#`` measured, ``|`` the ideal."""
    rows = [(p.jobs, sweep.speedup(p) or 0.0, sweep.ideal_speedup(p) or 0.0) for p in sweep.points]
    top = max(2.0, *(max(s, i) for _, s, i in rows))

    def column(value: float) -> int:
        return round(width * math.log(value) / math.log(top)) if value > 1 else 0

    lines = ["speedup over jobs=1 (log scale): # measured, | ideal"]
    for jobs, speedup, ideal in rows:
        filled = max(1, column(speedup))
        bar = ["#" if i < filled else " " for i in range(width + 1)]
        bar[column(ideal)] = "|"
        lines.append(f"{jobs:>5} {''.join(bar)} {speedup:6.1f}x  (ideal {ideal:.1f}x)")
    return "\n".join(lines)


def plot_png(sweep: Sweep, path: Path) -> None:
    """Draw speedup vs jobs (log-log) beside the ideal and linear curves into a PNG.

    Raises ImportError when matplotlib is not installed.
    """
    # Imported by name: matplotlib is an optional extra, and a Figure needs no pyplot state.
    figure_module: Any = importlib.import_module("matplotlib.figure")
    figure = figure_module.Figure(figsize=(7.5, 5), layout="constrained")
    axes = figure.subplots()
    _draw_curves(axes, sweep)
    jobs = [p.jobs for p in sweep.points]
    axes.set_xscale("log", base=2)
    axes.set_yscale("log", base=2)
    axes.set_xticks(jobs, [str(j) for j in jobs])
    axes.yaxis.set_major_formatter(_plain_formatter())
    axes.set_ylim(bottom=0.7)  # room for the label under jobs=1
    axes.set_xlabel("threads (--jobs)")
    axes.set_ylabel("speedup over --jobs 1")
    axes.set_title(f"urlfleet bench: {sweep.label}", fontsize=10)
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(loc="upper left", fontsize=9)
    axes.text(0.98, 0.03, _plot_note(sweep), transform=axes.transAxes, ha="right",
              va="bottom", fontsize=8, color="0.35")  # fmt: skip
    figure.savefig(path, dpi=120)


def _draw_curves(axes: Any, sweep: Sweep) -> None:
    jobs = [p.jobs for p in sweep.points]
    axes.plot(jobs, jobs, color="0.75", linestyle=":", label="linear (speedup = jobs)")
    axes.plot(
        jobs,
        [sweep.ideal_speedup(p) for p in sweep.points],
        color="tab:green",
        linestyle="--",
        marker="s",
        markersize=4,
        label="ideal (from measured latency)",
    )
    axes.plot(jobs, [sweep.speedup(p) for p in sweep.points], color="tab:blue", marker="o",
              linewidth=2, label="measured")  # fmt: skip
    busy = [p for p in sweep.points if p.cpu is not None and p.cpu.bound]
    if busy:
        axes.scatter([p.jobs for p in busy], [sweep.speedup(p) for p in busy], s=160,
                     facecolors="none", edgecolors="tab:red", zorder=3,
                     label=f"client CPU-bound (≥ {CPU_BOUND:.0%} of a core)")  # fmt: skip
    for point in sweep.points:  # the gap to the ideal, in numbers
        if point.efficiency is not None:
            axes.annotate(f"{point.efficiency:.2f}", (point.jobs, sweep.speedup(point)),
                          textcoords="offset points", xytext=(0, -15), ha="center",
                          fontsize=8, color="tab:blue")  # fmt: skip


def _plot_note(sweep: Sweep) -> str:
    note = "numbers: efficiency = ideal time / wall time"
    first = sweep.points[0]
    if first.fetched < sweep.urls:
        note += f"\njobs=1: {first.fetched} URLs fetched, time extrapolated to {sweep.urls}"
    return note


def _plain_formatter() -> Any:
    ticker: Any = importlib.import_module("matplotlib.ticker")
    return ticker.FuncFormatter(lambda value, _pos: f"{value:g}")
