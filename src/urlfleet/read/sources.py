"""Reading URL lists: files, '-' for stdin, directories of *.txt.

Lines are read lazily, so a list of millions of URLs never sits in memory. Blank lines and
'#' comments are skipped, exact duplicates dropped (remembered as 64-bit digests in a compact
table, about 16 bytes a URL, not strings), and every malformed line is reported as
``FILE:LINE: reason`` while reading goes on.

Anything that is not a regular file (a pipe, ``<(grep shop urls.txt)`` as ``/dev/fd/63``, a
named FIFO, ``/dev/stdin``, a terminal) is a *stream*: like ``-``, it is opened once and read
once, with no check beforehand that would consume it and no size estimate.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import sys
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from urlfleet.errors import InputError
from urlfleet.read.items import UrlItem, UrlRequest, split_item
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
from urlfleet.urls import MAX_URL_LENGTH, redact_url, url_digest, url_problem

# A line this long (in bytes) is skipped without being held in memory: no URL is that long,
# and /dev/zero or a binary file may hold no newline at all.
MAX_LINE_BYTES = 4 * MAX_URL_LENGTH + 1024
STDIN = "-"
# A JSON Lines or CSV row may carry a request body: rows get more room than URL lines.
MAX_ROW_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class InputProblem:
    """One malformed line: where it is and why it was skipped."""

    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


def is_stream(path: str) -> bool:
    """True for ``-`` and for anything that exists but is not a regular file or a directory.

    A stream can be read only once (a pipe, a FIFO, a terminal), so it is never opened to be
    checked or counted: only to be read, once. ``stat`` opens nothing, so this consumes nothing.
    """
    if path == STDIN:
        return True
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False  # missing or unreadable: the check says so, naming the file
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def bounded_lines(handle: BinaryIO, limit: int) -> Iterator[bytes | None]:
    """The lines of ``handle`` with their newlines, or None for each line longer than ``limit``.

    An overlong line is skipped in ``limit``-sized pieces, so memory stays bounded whatever
    the input holds.
    """
    while True:
        line = handle.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        while line and not line.endswith(b"\n"):  # drain the rest of the overlong line
            line = handle.readline(limit + 1)
        yield None


class DigestSet:
    """A set of 64-bit digests in arrays of ``"Q"``: about 16 bytes an entry, O(1) a lookup.

    CPython's ``set`` of 8-byte ``bytes`` costs over 80 bytes an entry (the object and its
    slot). Here each entry is its 8 bytes in an open-addressing table of 2**k slots kept at
    most 3/4 full and doubled when it would be fuller: 10.7 to 21 bytes an entry, 16.8 at a
    million. The digests are spread over ``PARTS`` such tables by their top bits, so that a
    table doubling (old and new side by side) adds a sliver to the peak, not half the set.

    0 marks an empty slot, so a digest of 0 is kept as 1 (one more chance in 2**64 of taking
    two URLs for one). Probing is double hashing: the first slot from the low bits, the step
    from the middle ones, made odd so that it visits every slot of a power-of-two table.

    >>> seen = DigestSet(); seen.add(d)  # True: new; a second seen.add(d) is False
    """

    PARTS = 64  # a power of two; the top 6 bits of a digest pick its table
    __slots__ = ("_tables", "_counts", "_size")

    def __init__(self, slots: int = 16) -> None:
        assert slots > 0 and slots & (slots - 1) == 0, "a power of two"
        self._tables = [array("Q", [0]) * slots for _ in range(self.PARTS)]
        self._counts = [0] * self.PARTS
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        """The tables' size in bytes."""
        return sum(len(table) * table.itemsize for table in self._tables)

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, int):
            return False
        digest = digest or 1
        table = self._tables[digest >> 58]
        return table[_slot(table, digest)] == digest

    def add(self, digest: int) -> bool:
        """Add ``digest``; False when it was there already."""
        digest = digest or 1
        part = digest >> 58
        table = self._tables[part]
        slot = _slot(table, digest)
        if table[slot] == digest:
            return False
        table[slot] = digest
        self._size += 1
        self._counts[part] = count = self._counts[part] + 1
        if 4 * count > 3 * len(table):
            grown = array("Q", [0]) * (2 * len(table))
            for held in table:
                if held:
                    grown[_slot(grown, held)] = held
            self._tables[part] = grown
        return True


def _slot(table: array[int], digest: int) -> int:
    # The digest's slot in the table, or the empty one where it would go.
    mask = len(table) - 1
    slot, step = digest & mask, (digest >> 29) | 1
    while (held := table[slot]) and held != digest:
        slot = (slot + step) & mask
    return slot


class UrlReader:
    """The URLs of some lists, in order, each request once: plain lists, JSON Lines or CSV
    rows, and sitemaps (files, or URLs fetched as the run goes, like any request).

    ``input_format`` (one of INPUT_FORMATS) reads every input that way; None picks it by
    the file's extension (``format_of``). ``url_column`` names a CSV list's URL column.

    >>> reader = UrlReader(["urls.txt", "rows.jsonl"]); reader.check(); urls = list(reader)
    """

    def __init__(
        self,
        sources: Sequence[str | os.PathLike[str]],
        *,
        on_problem: Callable[[InputProblem], None] | None = None,
        stdin: BinaryIO | None = None,
        input_format: str | None = None,
        url_column: str = "url",
    ) -> None:
        if input_format is not None and input_format not in INPUT_FORMATS:
            raise InputError(f"bad option: --input-format must be one of "
                             f"{', '.join(INPUT_FORMATS)}, got {input_format!r}")  # fmt: skip
        self._sources = [os.fspath(s) for s in sources] or [STDIN]
        self._on_problem = on_problem
        self._stdin = stdin
        self._format = input_format
        self._url_column = url_column
        self.duplicates = 0
        self.malformed = 0
        self.sitemaps = 0  # sitemaps read (files and fetched ones)
        self._inputs: list[str] | None = None

    @property
    def sources(self) -> list[str]:
        """The sources as given (``-`` when none was), directories not expanded."""
        return list(self._sources)

    def files(self) -> list[str]:
        """The files to read, directories expanded to their *.txt files (sorted); sitemap
        URLs are not files and are left out.

        Listed once: a file that appears in a directory later (say, an output written there)
        is not read by this run. Only *.txt: a directory often holds the results (*.jsonl)
        of earlier runs, which are not lists.
        """
        return [path for path in self._expanded() if not is_url(path)]

    def _expanded(self) -> list[str]:
        if self._inputs is None:
            expanded: list[str] = []
            for source in self._sources:
                if source != STDIN and not is_url(source) and os.path.isdir(source):
                    txt = (str(p) for p in Path(source).glob("*.txt") if p.is_file())
                    expanded.extend(sorted(txt))
                else:
                    expanded.append(source)
            self._inputs = expanded
        return list(self._inputs)

    def format_for(self, path: str) -> str:
        """How ``path`` is read: the reader's input format, else by its extension."""
        return self._format or format_of(path)

    def check(self) -> None:
        """Raise InputError, naming the file, if any input cannot be opened for reading, or
        a CSV list has no URL column.

        Streams are not opened (that could consume them, or wait for a writer): only checked
        for read permission.
        """
        for source in self._sources:
            if is_url(source) and self.format_for(source) != "sitemap":
                raise InputError(
                    f"{source}: a URL, not a file; to read it as a sitemap, give "
                    "--input-format sitemap (a URL ending in .xml is one already)"
                )
            if source != STDIN and os.path.isdir(source) and not self._has_txt(source):
                raise InputError(f"{source}: directory holds no *.txt files")
        for path in self.files():
            if path == STDIN:
                continue
            if is_stream(path):
                if not os.access(path, os.R_OK):
                    raise InputError(f"{path}: cannot read (Permission denied)")
                continue
            try:
                with open(path, "rb") as handle:
                    if self.format_for(path) in ("csv", "tsv"):
                        self._header(path, self._csv_reader(path, handle))
                    else:
                        handle.read(1)
            except OSError as exc:
                raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc

    def columns(self) -> list[str] | None:
        """The CSV/TSV inputs' columns besides the URL's, in order (each once), for output
        that carries them; None unless every input is a CSV/TSV file (stdin cannot be read
        twice)."""
        found: list[str] = []
        for path in self.files():
            if path == STDIN or is_stream(path) or self.format_for(path) not in ("csv", "tsv"):
                return None
            try:
                with open(path, "rb") as handle:
                    header = self._header(path, self._csv_reader(path, handle))
            except OSError as exc:
                raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
            if header is not None:
                names, url_at = header
                found.extend(n for i, n in enumerate(names) if i != url_at and n not in found)
        return found if self.files() else None

    def estimate(self) -> int | None:
        """How many URLs the files hold at most (lines that are not blank or comments).

        None when any input is a stream, which can only be read once, or a sitemap. Cheap:
        no URL is parsed.
        """
        paths = self._expanded()
        if any(is_stream(p) or is_url(p) or self.format_for(p) == "sitemap" for p in paths):
            return None
        total = 0
        for path in paths:
            header = self.format_for(path) in ("csv", "tsv")
            try:
                with open(path, "rb") as handle:
                    lines = sum(
                        1
                        for raw in bounded_lines(handle, MAX_LINE_BYTES)
                        if raw is None or (raw.strip() and not raw.lstrip().startswith(b"#"))
                    )
            except OSError:
                return None  # reading it for real will say what is wrong, naming the file
            total += max(0, lines - header)
        return total

    @staticmethod
    def _has_txt(directory: str) -> bool:
        return any(p.is_file() for p in Path(directory).glob("*.txt"))

    def __iter__(self) -> Iterator[UrlItem]:
        seen = DigestSet()
        for item in self._items():
            if not seen.add(item_digest(item)):
                self.duplicates += 1
                continue
            yield item

    def _items(self) -> Iterator[UrlItem]:
        # Sitemaps fetched meanwhile join the input as they come; once the lists are read,
        # the reader waits for those still out (the run fetching them), then ends.
        inbox = SitemapInbox()
        for path in self._expanded():
            for item in self._read_one(path, inbox):
                yield item
                while (came := inbox.ready()) is not None:
                    yield from self._listed(*came, inbox)
        while (came := inbox.next()) is not None:
            yield from self._listed(*came, inbox)

    def _read_one(self, path: str, inbox: SitemapInbox) -> Iterator[UrlItem]:
        if is_url(path):
            problem = url_problem(path)
            if problem is None:
                yield SitemapItem(path, 0, inbox)
            else:
                raise InputError(f"{path}: not a sitemap URL ({problem})")
            return
        if path == STDIN:
            yield from self._read(STDIN, self._stdin or _own_stdin(), inbox)
            return
        try:
            with open(path, "rb") as handle:
                yield from self._read(path, handle, inbox)
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc

    def _read(self, name: str, handle: BinaryIO, inbox: SitemapInbox) -> Iterator[UrlItem]:
        kind = self.format_for(name) if name != STDIN else (self._format or "lines")
        if kind == "lines":
            yield from self._lines(name, handle)
        elif kind == "jsonl":
            yield from self._jsonl(name, handle)
        elif kind == "sitemap":
            yield from self._sitemap_file(name, handle, inbox)
        else:
            yield from self._csv(name, handle)

    def _lines(self, name: str, handle: BinaryIO) -> Iterator[str]:
        for number, line in self._decoded(name, handle, MAX_LINE_BYTES):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            problem = url_problem(line)
            if problem is None:
                yield line
            else:
                self._report(name, number, problem)

    def _decoded(self, name: str, handle: BinaryIO, limit: int) -> Iterator[tuple[int, str]]:
        """The numbered lines of ``handle`` as text; a line too long or not UTF-8 is
        reported and comes as an empty line, so that numbers stay those of the file."""
        for number, raw in enumerate(bounded_lines(handle, limit), start=1):
            if raw is None:
                self._report(name, number, f"line longer than {limit} bytes")
                yield number, "\n"
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                self._report(name, number, "not valid UTF-8")
                yield number, "\n"
                continue
            if number == 1:
                line = line.lstrip("\ufeff")  # a BOM from Windows editors is not content
            yield number, line

    def _jsonl(self, name: str, handle: BinaryIO) -> Iterator[UrlRequest]:
        for number, line in self._decoded(name, handle, MAX_ROW_BYTES):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                request = json_row(line)
            except RowError as exc:
                self._report(name, number, str(exc))
                continue
            yield from self._checked(name, number, request)

    def _csv_reader(self, name: str, handle: BinaryIO) -> Any:
        lines = (line for _, line in self._decoded(name, handle, MAX_ROW_BYTES))
        return csv.reader(lines, delimiter="\t" if self.format_for(name) == "tsv" else ",")

    def _header(self, name: str, rows: Any) -> tuple[list[str], int] | None:
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
        if self._url_column not in header:
            found = ", ".join(repr(c) for c in header)
            raise InputError(f"{name}: no {self._url_column!r} column (the header has {found}); "
                             "name the URL column with --url-column")  # fmt: skip
        return header, header.index(self._url_column)

    def _csv(self, name: str, handle: BinaryIO) -> Iterator[UrlRequest]:
        rows = self._csv_reader(name, handle)
        found = self._header(name, rows)
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
                self._report(name, number, f"bad CSV ({exc})")
                continue
            if not row:
                continue
            try:
                request = csv_row(header, row, url_at)
            except RowError as exc:
                self._report(name, number, str(exc))
                continue
            yield from self._checked(name, number, request)

    def _sitemap_file(self, name: str, handle: BinaryIO, inbox: SitemapInbox) -> Iterator[UrlItem]:
        try:
            sitemap = parse(unpack(handle.read(MAX_BYTES + 1), MAX_BYTES))
        except SitemapError as exc:
            self._report(name, exc.line, f"not read as a sitemap: {exc}")
            return
        yield from self._listed(SitemapItem(name, 0, inbox), sitemap, inbox)

    def _listed(
        self, item: SitemapItem, sitemap: Sitemap, inbox: SitemapInbox
    ) -> Iterator[UrlItem]:
        """The entries of a sitemap that has been read: pages, or more sitemaps."""
        self.sitemaps += 1
        source = redact_url(item.url)
        if sitemap.dropped:
            self._report(source, sitemap.entries[-1].line, f"more than {MAX_URLS} entries; "
                         f"the other {sitemap.dropped} are not read")  # fmt: skip
        depth = item.depth + 1
        for entry in sitemap.entries:
            problem = url_problem(entry.loc) if entry.loc else "no <loc>"
            if problem is not None:
                self._report(source, entry.line, problem)
            elif not sitemap.index:
                meta = {"sitemap": source, "lastmod": entry.lastmod}
                yield UrlRequest(entry.loc, meta=meta)
            elif depth > MAX_DEPTH:
                self._report(source, entry.line, f"sitemap indexes nested more than "
                             f"{MAX_DEPTH} deep; {entry.loc} is not fetched")  # fmt: skip
            else:
                yield SitemapItem(entry.loc, depth, inbox, meta={"sitemap": source})

    def _checked(self, name: str, number: int, request: UrlRequest) -> Iterator[UrlRequest]:
        problem = url_problem(request.url)
        if problem is None:
            yield request
        else:
            self._report(name, number, problem)

    def _report(self, name: str, number: int, reason: str) -> None:
        self.malformed += 1
        if self._on_problem is not None:
            self._on_problem(InputProblem(name, number, reason))


INPUT_FORMATS = ("lines", "jsonl", "csv", "tsv", "sitemap")
_SUFFIXES = (
    (".jsonl", "jsonl"), (".ndjson", "jsonl"), (".csv", "csv"), (".tsv", "tsv"),
    (".xml", "sitemap"), (".xml.gz", "sitemap"),
)  # fmt: skip


def format_of(path: str) -> str:
    """The input format a file's name says: ``.jsonl``/``.ndjson``, ``.csv``, ``.tsv``,
    ``.xml``/``.xml.gz`` (a sitemap); anything else, ``-`` too, is a plain list."""
    name = path.lower()
    return next((kind for suffix, kind in _SUFFIXES if name.endswith(suffix)), "lines")


def is_url(source: str) -> bool:
    """True for an input given as an http(s) URL: a sitemap to fetch, not a file."""
    return source[:8].lower().startswith(("http://", "https://"))


def item_digest(item: UrlItem) -> int:
    """The dedup key of a list item: its URL for a plain URL (and for a row that asks
    nothing more than a GET), else the whole request: URL, method, headers, body and
    validators, not ``meta``. Two rows that ask differently are two requests."""
    if isinstance(item, SitemapItem):
        return url_digest("sitemap " + item.url)  # never equal to a page's: a space
    if not isinstance(item, UrlRequest):
        return url_digest(split_item(item)[0])
    if item.method in (None, "GET") and not item.headers and item.data is None \
            and not item.conditional:  # fmt: skip
        return url_digest(item.url)
    key = [item.url, item.method or "GET", sorted(item.headers.items()),
           (item.data or b"").hex(), item.etag, item.last_modified]  # fmt: skip
    return url_digest(json.dumps(key))


def _own_stdin() -> BinaryIO:
    # A buffer of our own on file descriptor 0, not sys.stdin's: the reading thread may still
    # be blocked in a read when the process exits, and the interpreter's shutdown takes the
    # lock of sys.stdin's buffer; held by that thread, it aborts the process (exit 134).
    return io.BufferedReader(io.FileIO(sys.stdin.fileno(), "rb", closefd=False))
