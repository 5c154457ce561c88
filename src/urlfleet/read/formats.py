"""The kinds of list, each read its own way: plain lines, JSON Lines, CSV/TSV with a header
row, sitemap files.

Each reader yields list items and tells every malformed line to the ``Report`` callback as
``FILE:LINE: reason``, then goes on: one bad line never stops a list.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any, BinaryIO

from urlfleet.errors import InputError
from urlfleet.read.items import UrlItem, UrlRequest
from urlfleet.read.lines import MAX_LINE_BYTES, Report, decoded
from urlfleet.read.rows import RowError, csv_row, json_row
from urlfleet.read.sitemaps import (
    MAX_BYTES,
    MAX_DEPTH,
    MAX_URLS,
    Sitemap,
    SitemapError,
    SitemapInbox,
    SitemapItem,
    parse,
    unpack,
)
from urlfleet.urls import redact_url, url_problem

INPUT_FORMATS = ("lines", "jsonl", "csv", "tsv", "sitemap")
# A JSON Lines or CSV row may carry a request body: rows get more room than URL lines.
MAX_ROW_BYTES = 16 * 1024 * 1024
_SUFFIXES = (
    (".jsonl", "jsonl"), (".ndjson", "jsonl"), (".csv", "csv"), (".tsv", "tsv"),
    (".xml", "sitemap"), (".xml.gz", "sitemap"),
)  # fmt: skip


def format_of(path: str) -> str:
    """The input format a file's name says: ``.jsonl``/``.ndjson``, ``.csv``, ``.tsv``,
    ``.xml``/``.xml.gz`` (a sitemap); anything else, ``-`` too, is a plain list."""
    name = path.lower()
    return next((kind for suffix, kind in _SUFFIXES if name.endswith(suffix)), "lines")


def read_lines(name: str, handle: BinaryIO, report: Report) -> Iterator[str]:
    """The URLs of a plain list, one a line; blank lines and '#' comments are skipped."""
    for number, line in decoded(name, handle, MAX_LINE_BYTES, report):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        problem = url_problem(line)
        if problem is None:
            yield line
        else:
            report(name, number, problem)


def read_jsonl(name: str, handle: BinaryIO, report: Report) -> Iterator[UrlRequest]:
    """The requests of a JSON Lines list, one object a line (see rows)."""
    for number, line in decoded(name, handle, MAX_ROW_BYTES, report):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            request = json_row(line)
        except RowError as exc:
            report(name, number, str(exc))
            continue
        yield from _checked(name, number, request, report)


def csv_rows(name: str, handle: BinaryIO, kind: str, report: Report) -> Any:
    """A ``csv.reader`` over the decoded lines of a ``kind`` ("csv" or "tsv") file."""
    lines = (line for _, line in decoded(name, handle, MAX_ROW_BYTES, report))
    return csv.reader(lines, delimiter="\t" if kind == "tsv" else ",")


def csv_header(name: str, rows: Any, url_column: str) -> tuple[list[str], int] | None:
    """The header row and the URL column's place; None for an empty file."""
    try:
        header = next((row for row in rows if row), None)
    except csv.Error as exc:
        raise InputError(f"{name}:{rows.line_num}: bad CSV header ({exc})") from exc
    if header is None:
        return None
    header = [column.strip() for column in header]
    twice = next((c for i, c in enumerate(header) if c in header[:i]), None)
    if twice is not None:
        raise InputError(f"{name}: column {twice!r} appears twice in the header")
    if url_column not in header:
        found = ", ".join(repr(c) for c in header)
        raise InputError(f"{name}: no {url_column!r} column (the header has {found}); "
                         "name the URL column with --url-column")  # fmt: skip
    return header, header.index(url_column)


def read_csv(
    name: str, handle: BinaryIO, kind: str, *, url_column: str, report: Report
) -> Iterator[UrlRequest]:
    """The requests of a ``kind`` ("csv" or "tsv") list, a row each after the header."""
    rows = csv_rows(name, handle, kind, report)
    found = csv_header(name, rows, url_column)
    if found is None:
        return
    header, url_at = found
    while True:
        number = rows.line_num + 1  # a row's number is that of its first line
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            report(name, number, f"bad CSV ({exc})")
            continue
        if not row:
            continue
        try:
            request = csv_row(header, row, url_at)
        except RowError as exc:
            report(name, number, str(exc))
            continue
        yield from _checked(name, number, request, report)


def read_sitemap(name: str, handle: BinaryIO, report: Report) -> Sitemap | None:
    """A sitemap file, parsed; None (reported) when it is not one."""
    try:
        return parse(unpack(handle.read(MAX_BYTES + 1), MAX_BYTES))
    except SitemapError as exc:
        report(name, exc.line, f"not read as a sitemap: {exc}")
        return None


def sitemap_entries(
    item: SitemapItem, sitemap: Sitemap, inbox: SitemapInbox, report: Report
) -> Iterator[UrlItem]:
    """The entries of a sitemap that has been read: pages, or more sitemaps."""
    source = redact_url(item.url)
    if sitemap.dropped:
        report(source, sitemap.entries[-1].line, f"more than {MAX_URLS} entries; "
               f"the other {sitemap.dropped} are not read")  # fmt: skip
    depth = item.depth + 1
    for entry in sitemap.entries:
        problem = url_problem(entry.loc) if entry.loc else "no <loc>"
        if problem is not None:
            report(source, entry.line, problem)
        elif not sitemap.index:
            meta = {"sitemap": source, "lastmod": entry.lastmod}
            yield UrlRequest(entry.loc, meta=meta)
        elif depth > MAX_DEPTH:
            report(source, entry.line, f"sitemap indexes nested more than "
                   f"{MAX_DEPTH} deep; {entry.loc} is not fetched")  # fmt: skip
        else:
            yield SitemapItem(entry.loc, depth, inbox, meta={"sitemap": source})


def _checked(name: str, number: int, request: UrlRequest, report: Report) -> Iterator[UrlRequest]:
    problem = url_problem(request.url)
    if problem is None:
        yield request
    else:
        report(name, number, problem)
