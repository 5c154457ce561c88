"""Resuming: which URLs a results file already holds a final answer for.

A URL is *done* when it has a record that is ok, or a failure that retrying cannot fix (a
4xx other than 408, 425 and 429: the server's final word). Anything else (connection errors,
timeouts, 5xx, 429, URLs never reached) is fetched again. Done URLs are remembered as sorted
8-byte digests, so a million of them take 8 MB, not the hundreds a set of strings would.

The file may have been damaged or may not be urlfleet's at all. A line that is not a record
(garbage, nesting deep enough to exhaust the parser, the wrong types, a line of megabytes, bytes
that are not UTF-8) is skipped and counted; a file whose first line is not a record is refused
by :func:`check_results_file` before anything appends to it.

A CSV results file (``-o results.csv``) is read the same way: its header row must name the
``url`` and ``ok`` columns, and a row that is not a record is skipped and counted.
"""

from __future__ import annotations

import heapq
import json
import os
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from urlfleet.config import RETRY_STATUSES
from urlfleet.errors import InputError
from urlfleet.read.items import UrlItem, split_item
from urlfleet.read.lines import MAX_LINE_BYTES, bounded_lines
from urlfleet.read.sitemaps import SitemapItem
from urlfleet.record.csvout import csv_header, csv_rows, is_csv_records, record_of_row
from urlfleet.urls import redact_url
from urlfleet.urls import url_digest as digest_of

# A record holds a URL and a final URL (each at most MAX_URL_LENGTH characters, up to four
# UTF-8 bytes each) and an error message that may quote them: a longer line is not a record.
MAX_RECORD_BYTES = 4 * MAX_LINE_BYTES


def url_digest(url: str) -> int:
    """A 64-bit digest of the URL as records show it (passwords masked)."""
    return digest_of(redact_url(url))


def record_of(line: bytes) -> dict[str, Any] | None:
    """The record a line holds: a JSON object with a string ``url`` and a boolean ``ok``.

    None for anything else, whatever the bytes are; never raises.
    """
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(record, dict):
        return None
    url = record.get("url")
    if not isinstance(url, str) or not isinstance(record.get("ok"), bool):
        return None
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape: no URL urlfleet wrote
        return None
    return record


def check_results_file(path: Path) -> None:
    """Raise InputError unless ``path`` looks like a urlfleet results file (or is empty).

    The first non-blank line decides: it must be a record. A lone unfinished first line (a run
    killed while writing its first record) passes when it starts like one.
    """
    limit = MAX_RECORD_BYTES
    if is_csv_records(path):
        _check_csv_header(path)
        return
    with open(path, "rb") as handle:
        for number, line in enumerate(iter(lambda: handle.readline(limit + 1), b""), start=1):
            if not line.strip():
                continue
            if (len(line) <= limit or line.endswith(b"\n")) and record_of(line) is not None:
                return
            if not line.endswith(b"\n") and line.lstrip().startswith(b'{"url": '):
                while line and not line.endswith(b"\n"):
                    line = handle.readline(limit + 1)
                if not line:
                    return  # no newline to the end: the torn tail repair_torn_tail cuts off
            raise InputError(
                f"{path}: not a urlfleet results file (line {number} is not a record); "
                "refusing to resume into it"
            )


def _check_csv_header(path: Path) -> None:
    with open(path, "rb") as handle:
        number, row = next(csv_rows(handle, MAX_RECORD_BYTES), (1, None))
    try:
        csv_header(row)
    except ValueError:
        raise InputError(
            f"{path}:{number}: not a urlfleet CSV results file (its header has no url and ok "
            "columns); refusing to resume into it"
        ) from None


def is_done(record: dict[str, Any]) -> bool:
    """True when the record is a final outcome that a new attempt would not change."""
    if record.get("ok") is True:
        return True
    status = record.get("status")
    return isinstance(status, int) and 400 <= status < 500 and status not in RETRY_STATUSES


def repair_torn_tail(path: Path) -> int:
    """Cut a half-written last line (from a crash or a kill) off the file; bytes removed."""
    with open(path, "rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        position = size
        while position > 0:
            step = min(65536, position)
            handle.seek(position - step)
            block = handle.read(step)
            newline = block.rfind(b"\n")
            if newline >= 0:
                keep = position - step + newline + 1
                break
            position -= step
        else:
            keep = 0
        if keep < size:
            handle.truncate(keep)
        return size - keep


class DoneUrls:
    """The URLs a results file already has a final record for.

    >>> done = DoneUrls.read(Path("out.jsonl")); "http://a.test/" in done
    """

    def __init__(self, digests: Iterable[int]) -> None:
        self._digests = _sorted_array(digests)

    @classmethod
    def read(cls, path: Path, *, on_bad_line: Callable[[int], None] | None = None) -> DoneUrls:
        """Read the done URLs of a JSONL or CSV results file (a missing file holds none)."""
        if not path.exists():
            return cls(())
        return cls(_done_digests(path, on_bad_line))

    def __len__(self) -> int:
        return len(self._digests)

    def __contains__(self, url: object) -> bool:
        if not isinstance(url, str):
            return False
        digest = url_digest(url)
        index = bisect_left(self._digests, digest)
        return index < len(self._digests) and self._digests[index] == digest

    def skip_done(self, urls: Iterable[UrlItem], skipped: list[int]) -> Iterator[UrlItem]:
        """The list items not done yet; counts the others in ``skipped[0]``.

        The key is the URL, for rows too (a record holds no method or body). A sitemap to
        fetch is never skipped: a good one has no record, and its pages are checked here as
        they come."""
        for item in urls:
            if not isinstance(item, SitemapItem) and split_item(item)[0] in self:
                skipped[0] += 1
            else:
                yield item


def _sorted_array(digests: Iterable[int], run: int = 65_536) -> array[int]:
    """The digests sorted, in an array: 8 bytes each, and 16 for a moment while merging.

    ``sorted`` of them all would hold a list of int objects first, 40 bytes a digest: so they
    are sorted in runs of ``run`` and the runs merged into the array.
    """
    runs: list[array[int]] = []
    chunk: array[int] = array("Q")
    for digest in digests:
        chunk.append(digest)
        if len(chunk) >= run:
            runs.append(array("Q", sorted(chunk)))
            chunk = array("Q")
    runs.append(array("Q", sorted(chunk)))
    if len(runs) == 1:
        return runs[0]
    return array("Q", heapq.merge(*runs))


def _done_digests(path: Path, on_bad_line: Callable[[int], None] | None) -> Iterator[int]:
    # The header of a CSV file was checked by check_results_file.
    for number, record in numbered_records(path):
        if record is None:
            if on_bad_line is not None:
                on_bad_line(number)
        elif is_done(record):
            yield url_digest(record["url"])


class NotResultsFile(ValueError):
    """A CSV results file whose header is not urlfleet's; ``line`` is the header's line."""

    def __init__(self, line: int, why: str) -> None:
        super().__init__(why)
        self.line = line


def numbered_records(
    path: str | os.PathLike[str],
) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(line number, record) of each record of a results file, JSON Lines or CSV; the record
    is None for a line that is not one. Blank lines are skipped; NotResultsFile for a CSV
    file without urlfleet's header."""
    csv = is_csv_records(path)
    with open(path, "rb") as handle:
        if not csv:
            for number, line in enumerate(bounded_lines(handle, MAX_RECORD_BYTES), start=1):
                if line is None or line.strip():
                    yield number, None if line is None else record_of(line)
            return
        rows = csv_rows(handle, MAX_RECORD_BYTES)
        number, first = next(rows, (1, None))
        try:
            header = csv_header(first)
        except ValueError as exc:
            raise NotResultsFile(number, str(exc)) from None
        for number, row in rows:
            yield number, None if row is None else record_of_row(header, row)
