"""CSV records: the JSON record's keys as columns, one row per URL, the header row first.

Cells are what a spreadsheet reads without help: booleans ``true``/``false``, null empty,
numbers as JSON writes them, dicts (``headers``, ``meta``) as JSON. A CSV/TSV input list's own
columns come back as columns of their own, after the record's, in input order (one that has a
record key's name is written ``meta.NAME``); otherwise ``meta`` is a column of JSON.

>>> writer = CsvWriter(stream, meta_columns=["shop", "region"]); writer.write(result)
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, BinaryIO

from urlfleet.read.lines import bounded_lines
from urlfleet.record.records import LineWriter, Result, record_columns

META_PREFIX = "meta."  # an input column named like a record key


def csv_cell(value: Any) -> str:
    """One value as its CSV cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def header_of(
    *, record_headers: bool = False, meta_columns: Sequence[str] | None = None
) -> list[str]:
    """The header row a CsvWriter with these settings writes."""
    columns = list(record_columns(headers=record_headers))
    if meta_columns is None:
        return columns
    taken = set(columns)
    columns.remove("meta")
    return columns + [META_PREFIX + name if name in taken else name for name in meta_columns]


class CsvWriter(LineWriter):
    """Writes one CSV row per result, whole rows only (as JsonlWriter).

    ``meta_columns``: the input list's columns, each written as its own column from the
    result's ``meta`` dict; None writes ``meta`` as one JSON column. ``header=False`` when
    appending to a file that has its header row already (``--resume``).
    """

    def __init__(
        self,
        stream: IO[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        record_headers: bool = False,
        meta_columns: Sequence[str] | None = None,
        header: bool = True,
    ) -> None:
        super().__init__(stream, clock=clock, record_headers=record_headers)
        self._meta_columns = None if meta_columns is None else list(meta_columns)
        if header:
            self._put(_row(header_of(record_headers=record_headers, meta_columns=meta_columns)))

    def write(self, result: Result) -> None:
        record = result.to_record(headers=self._headers)
        meta = record.pop("meta")
        cells = [csv_cell(value) for value in record.values()]
        if self._meta_columns is None:
            cells.append(csv_cell(meta))
        else:
            given = meta if isinstance(meta, dict) else {}
            cells.extend(csv_cell(given.get(name)) for name in self._meta_columns)
        self._put_record(_row(cells))


def _row(cells: list[str]) -> str:
    line = io.StringIO()
    csv.writer(line, lineterminator="\n").writerow(cells)
    return line.getvalue()


# --------------------------------------------------------------------------- reading back
# For --resume and --revalidate: a CSV results file's rows as records again (the keys those
# need, typed back: ok and unchanged as booleans, status as an int, empty cells as None).
_BOOLEANS = {"true": True, "false": False}


def is_csv_records(path: str | os.PathLike[str]) -> bool:
    """True when a results file is CSV, not JSON Lines: its name ends in .csv, or its first
    non-blank line is urlfleet's CSV header (``url,ok,...``)."""
    if os.fspath(path).lower().endswith(".csv"):
        return True
    with open(path, "rb") as handle:
        for line in iter(lambda: handle.readline(4096), b""):
            if line.strip():
                return line.lstrip(b"\xef\xbb\xbf").startswith(b"url,ok,")
    return False


def csv_header(row: Sequence[str] | None) -> list[str]:
    """The header row of a CSV results file; ValueError unless it names url and ok."""
    if row is None or "url" not in row or "ok" not in row:
        raise ValueError("not a urlfleet results file (no url and ok columns in its header)")
    return list(row)


def csv_rows(handle: BinaryIO, limit: int) -> Iterator[tuple[int, list[str] | None]]:
    """(line number, cells) of each row; None for a row that is not CSV or is too long."""
    lines = (line.decode("utf-8", "replace") if line is not None else "\x00\n"
             for line in bounded_lines(handle, limit))  # fmt: skip
    rows = csv.reader(lines, strict=True)
    while True:
        start = rows.line_num + 1
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error:
            yield start, None
            continue
        if row:
            yield start, row


def record_of_row(header: Sequence[str], row: Sequence[str]) -> dict[str, Any] | None:
    """The record a CSV row holds, typed back; None for a row that is not one."""
    if len(row) != len(header) or "\x00" in "".join(row):
        return None
    cells = dict(zip(header, row, strict=True))
    ok, url = _BOOLEANS.get(cells["ok"]), cells["url"]
    status = cells.get("status", "")
    if ok is None or not url or not (status == "" or status.isdigit()):
        return None
    record: dict[str, Any] = {"url": url, "ok": ok, "status": int(status) if status else None}
    for name in ("etag", "last_modified"):
        record[name] = cells.get(name) or None
    record["unchanged"] = cells.get("unchanged") == "true"
    return record
