"""Per-host rows for the report: who was slow, who throttled us, who set the pace."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from urlfleet.report.runstats import quantile
from urlfleet.report.tally import HostTallies, HostTally


@dataclass(frozen=True, kw_only=True, slots=True)
class HostRow:
    """One host's line in the report."""

    host: str
    requests: int
    ok: int
    failed: int
    throttled: int  # 429 and 503 answers
    paused_s: float
    p50_s: float | None
    p95_s: float | None
    rate: float  # requests per second while the host was being fetched


def host_rows(
    hosts: Mapping[str, HostTally] | HostTallies, paused: Mapping[str, float], *, top: int = 20
) -> list[HostRow]:
    """The ``top`` hosts by time spent on them, busiest first."""
    busiest = sorted(hosts.items(), key=lambda item: item[1].busy_s, reverse=True)[:top]
    return [_row(host, tally, paused.get(host, 0.0)) for host, tally in busiest]


def _row(host: str, tally: HostTally, paused_s: float) -> HostRow:
    span = tally.last - tally.first
    ordered = sorted(tally.latencies)
    return HostRow(
        host=host,
        requests=tally.requests,
        ok=tally.ok,
        failed=tally.urls - tally.ok,
        throttled=tally.throttled,
        paused_s=round(paused_s, 3),
        p50_s=quantile(ordered, 0.5),
        p95_s=quantile(ordered, 0.95),
        rate=round(tally.requests / span, 2) if span > 0 else 0.0,
    )


def host_table(rows: list[HostRow]) -> str:
    """The rows as an aligned text table."""
    header = ("host", "requests", "ok", "failed", "429/503", "paused s", "p50 s", "p95 s", "req/s")
    lines = [
        (r.host, str(r.requests), str(r.ok), str(r.failed), str(r.throttled), f"{r.paused_s:.1f}",
         _seconds(r.p50_s), _seconds(r.p95_s), f"{r.rate:.1f}")
        for r in rows
    ]  # fmt: skip
    widths = [max(len(cell) for cell in column) for column in zip(header, *lines, strict=False)]
    return "\n".join(
        "  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in
                  enumerate(zip(row, widths, strict=False)))
        for row in (header, *lines)
    )  # fmt: skip


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
