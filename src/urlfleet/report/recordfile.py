"""A results file read back: its records, and the Report they make.

``urlfleet report`` builds the same report a run prints from any records file, including one
that was interrupted and resumed: a URL recorded twice (a retryable failure, then the resumed
run's answer) counts once, by its last record. The numbers go through the same Tally and
build_report as a live run's, so the page, ``--report`` and the summary agree.

The file is read with resume's reader, line by bounded line, so a damaged or hostile file (a
line of a gigabyte, garbage, records with the wrong types) costs bounded memory per line: such
lines are skipped and counted, not trusted. Each run of a resumed file measured ``started_s``
from its own start; the runs are laid end to end, since the time between them is not recorded.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from urlfleet.config import THROTTLE_STATUSES, FetchConfig
from urlfleet.errors import InputError
from urlfleet.read.resume import NotResultsFile, numbered_records
from urlfleet.record.records import Result
from urlfleet.report.summary import Report, build_report
from urlfleet.report.tally import Phase, Tally

# What the report reads of a record; the rest (headers, meta, sha256...) is not kept, so a
# file of a million records costs what the report needs of them.
SECONDS_KEYS = ("elapsed_s", "started_s", "ttfb_s")
COUNT_KEYS = ("status", "attempts", "bytes", "requests")
TEXT_KEYS = ("host", "error_kind")
MAX_SECONDS = 1e9  # some 30 years: a larger time is not one a run measured
# A record that ends this much earlier than the latest end so far (and before half of it)
# starts a new run's clock: within one run records are written as URLs finish, in order to
# within the moment it takes to write one.
RESUMED_DROP_S = 1.0


@dataclass(frozen=True, slots=True)
class RecordsFile:
    """The records of a results file (the last of each URL, in file order) and what was odd.

    ``resumed_at``: where each run after the first begins on the records' common time axis.
    """

    records: list[dict[str, Any]]
    skipped: int = 0  # lines that are not records
    first_skipped: int | None = None  # the line number of the first of them
    resumed_at: list[float] = field(default_factory=list)


def read_records(path: Path) -> RecordsFile:
    """The records of a JSONL or CSV results file.

    InputError (one line, naming the file and line) when it cannot be read or holds no record
    at all while some line is not one.
    """
    latest: dict[str, dict[str, Any]] = {}
    skipped, first_skipped = 0, None
    clock = _RunClock()
    try:
        for number, raw in numbered_records(path):
            record = checked(raw) if raw is not None else None
            if record is None:
                skipped += 1
                first_skipped = first_skipped or number
                continue
            clock.place(record)
            latest.pop(record["url"], None)  # a later record of a URL replaces it, in place
            latest[record["url"]] = record
    except NotResultsFile as exc:
        raise InputError(f"{path}:{exc.line}: not a urlfleet results file ({exc})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not latest and skipped:
        raise InputError(f"{path}:{first_skipped}: not a urlfleet record (a JSON object with "
                         '"url" and "ok"); the file holds no record')  # fmt: skip
    return RecordsFile(list(latest.values()), skipped, first_skipped, clock.resumed_at)


def checked(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """What the report reads of ``record``, or None when a field has the wrong type (a number
    that is negative, not finite or absurdly large counts as wrong). A missing field is None."""
    kept: dict[str, Any] = {"url": record["url"], "ok": record["ok"]}
    for name in SECONDS_KEYS:
        value = record.get(name)
        if value is not None and not (_is_number(value) and 0 <= value <= MAX_SECONDS):
            return None
        kept[name] = value
    for name in COUNT_KEYS:
        value = record.get(name)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool)
                                      and value >= 0):  # fmt: skip
            return None
        kept[name] = value
    for name in TEXT_KEYS:
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            return None
        kept[name] = value
    kept["truncated"] = record.get("truncated") is True
    return kept


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class _RunClock:
    """Moves each record's started_s onto one axis: a resumed run's clock restarts at zero, so
    its records are shifted to begin where the run before it ended."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.latest_end = 0.0  # in the current run's own clock
        self.resumed_at: list[float] = []

    def place(self, record: dict[str, Any]) -> None:
        start = record["started_s"]
        if start is None:
            return
        end = start + (record["elapsed_s"] or 0.0)
        if self.latest_end - end > RESUMED_DROP_S and end < self.latest_end / 2:
            self.offset += self.latest_end
            self.resumed_at.append(round(self.offset, 6))
            self.latest_end = 0.0
        self.latest_end = max(self.latest_end, end)
        if self.offset:
            record["started_s"] = round(start + self.offset, 6)


def result_of(record: Mapping[str, Any]) -> Result:
    """A Result that counts like the record did: its time holding a host is its elapsed_s."""
    elapsed = float(record.get("elapsed_s") or 0.0)
    attempts = int(record.get("attempts") or 0)
    status = record.get("status")
    ttfb = record.get("ttfb_s")
    return Result(
        url=str(record["url"]), ok=bool(record["ok"]),
        status=status if isinstance(status, int) else None, error=None,
        attempts=attempts, elapsed_s=elapsed, bytes=int(record.get("bytes") or 0),
        host=str(record.get("host") or "?"), truncated=bool(record.get("truncated")),
        error_kind=record.get("error_kind"), requests=int(record.get("requests") or attempts),
        busy_s=elapsed, throttled=int(status in THROTTLE_STATUSES),
        ttfb_s=float(ttfb) if isinstance(ttfb, int | float) else None,
    )  # fmt: skip


def report_of_records(records: list[dict[str, Any]], *, jobs: int | None = None,
                      per_host: int | None = None, delay: float = 0.0,
                      malformed: int = 0) -> Report:  # fmt: skip
    """The Report of a records file; the ideal time and the bottleneck only when the run's
    ``jobs`` and ``per_host`` are given (a records file does not say them), the wall time only
    when the records say when their URLs started."""
    tally = Tally()
    for record in records:
        tally.add(result_of(record))
    wall = span_of(records)
    config = FetchConfig(per_host=per_host or 1, delay=delay)
    report = build_report([Phase("threaded", jobs or 1, wall or 0.0, tally)], config,
                          malformed=malformed)  # fmt: skip
    unknown: dict[str, Any] = {}
    if jobs is None or per_host is None:
        unknown.update(ideal_s=None, efficiency=None, bottleneck=None)
    if jobs is None:
        unknown["jobs"] = None
    if per_host is None:
        unknown["per_host"] = None
    if wall is None:
        unknown.update(wall_s=None, requests_per_s=None, efficiency=None)
    return dataclasses.replace(report, **unknown)


def span_of(records: list[dict[str, Any]]) -> float | None:
    """First request to last byte, from started_s; None when no record says when it started."""
    timed = [r for r in records if _is_number(r.get("started_s"))]
    if not timed:
        return None
    first = min(float(r["started_s"]) for r in timed)
    return max(float(r["started_s"]) + float(r.get("elapsed_s") or 0.0) for r in timed) - first
