"""A results file read back: its records, and the Report they make.

``urlfleet report`` builds the same report a run prints from any records file, including one
that was interrupted and resumed: a URL recorded twice (a retryable failure, then the resumed
run's answer) counts once, by its last record. The numbers go through the same Tally and
build_report as a live run's, so the page, ``--report`` and the summary agree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from urlfleet.config import FetchConfig
from urlfleet.errors import InputError
from urlfleet.records import Result
from urlfleet.report import Phase, Report, Tally, build_report
from urlfleet.resume import record_of
from urlfleet.timeline import THROTTLE_STATUSES


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL results file, the last one of each URL, in file order.

    InputError naming FILE:LINE for a line that is not a record (blank lines are skipped).
    """
    latest: dict[str, dict[str, Any]] = {}
    try:
        with open(path, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                record = record_of(line)
                if record is None:
                    raise InputError(f"{path}:{number}: not a urlfleet record (a JSON object "
                                     'with "url" and "ok")')  # fmt: skip
                latest.pop(record["url"], None)  # a later record of a URL replaces it, in place
                latest[record["url"]] = record
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return list(latest.values())


def result_of(record: Mapping[str, Any]) -> Result:
    """A Result that counts like the record did: its time holding a host is its elapsed_s."""
    elapsed = float(record.get("elapsed_s") or 0.0)
    attempts = int(record.get("attempts") or 0)
    status = record.get("status")
    return Result(
        url=str(record["url"]), ok=bool(record["ok"]),
        status=status if isinstance(status, int) else None, error=record.get("error"),
        attempts=attempts, elapsed_s=elapsed, bytes=int(record.get("bytes") or 0),
        host=str(record.get("host") or "?"), truncated=bool(record.get("truncated")),
        error_kind=record.get("error_kind"), requests=int(record.get("requests") or attempts),
        busy_s=elapsed, throttled=int(status in THROTTLE_STATUSES),
        started=float(record.get("started_s") or 0.0),
    )  # fmt: skip


def report_of_records(records: list[dict[str, Any]], *, jobs: int | None = None,
                      per_host: int | None = None, delay: float = 0.0) -> Report:  # fmt: skip
    """The Report of a records file; the ideal time and the bottleneck only when the run's
    ``jobs`` and ``per_host`` are given (a records file does not say them)."""
    tally = Tally()
    for record in records:
        tally.add(result_of(record))
    wall = _span(records)
    config = FetchConfig(per_host=per_host or 1, delay=delay)
    report = build_report([Phase("threaded", jobs or 1, wall, tally)], config)
    if jobs is None or per_host is None:
        report = dataclasses.replace(report, ideal_s=None, efficiency=None, bottleneck=None)
    return report


def _span(records: list[dict[str, Any]]) -> float:
    """First request to last byte, from started_s; 0.0 when the records do not say."""
    timed = [r for r in records if isinstance(r.get("started_s"), int | float)]
    if not timed:
        return 0.0
    first = min(float(r["started_s"]) for r in timed)
    return max(float(r["started_s"]) + float(r.get("elapsed_s") or 0.0) for r in timed) - first
