"""Reading URL lists: files, '-' for stdin, directories of *.txt.

Lines are read lazily, so a list of millions of URLs never sits in memory. Blank lines and
'#' comments are skipped, exact duplicates dropped (see dedup), and every malformed line is
reported as ``FILE:LINE: reason`` while reading goes on. How each kind of list is read is in
formats; what counts as a stream, read once and never checked beforehand, is in paths.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from urlfleet.errors import InputError
from urlfleet.read.dedup import DigestSet, item_digest
from urlfleet.read.formats import (
    INPUT_FORMATS,
    csv_header,
    csv_rows,
    format_of,
    read_csv,
    read_jsonl,
    read_lines,
    read_sitemap,
    sitemap_entries,
)
from urlfleet.read.items import UrlItem
from urlfleet.read.paths import (
    STDIN,
    check_source,
    check_stream,
    estimate_entries,
    expand,
    is_stream,
    is_url,
    own_stdin,
    reading,
)
from urlfleet.read.sitemaps import Sitemap, SitemapInbox, SitemapItem
from urlfleet.urls import url_problem


@dataclass(frozen=True, slots=True)
class InputProblem:
    """One malformed line: where it is and why it was skipped."""

    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


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
            self._inputs = expand(self._sources)
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
            check_source(source, self.format_for(source))
        for path in self.files():
            if path == STDIN:
                continue
            if is_stream(path):
                check_stream(path)
                continue
            with reading(path) as handle:
                if self.format_for(path) in ("csv", "tsv"):
                    self._header(path, handle)
                else:
                    handle.read(1)

    def columns(self) -> list[str] | None:
        """The CSV/TSV inputs' columns besides the URL's, in order (each once), for output
        that carries them; None unless every input is a CSV/TSV file (stdin cannot be read
        twice)."""
        found: list[str] = []
        for path in self.files():
            if path == STDIN or is_stream(path) or self.format_for(path) not in ("csv", "tsv"):
                return None
            with reading(path) as handle:
                header = self._header(path, handle)
            if header is not None:
                names, url_at = header
                found.extend(n for i, n in enumerate(names) if i != url_at and n not in found)
        return found if self.files() else None

    def estimate(self) -> int | None:
        """How many URLs the files hold at most (lines that are not blank or comments).

        None when any input is a stream, which can only be read once, or a sitemap. Cheap:
        no URL is parsed.
        """
        return estimate_entries(self._expanded(), self.format_for)

    def _header(self, name: str, handle: BinaryIO) -> tuple[list[str], int] | None:
        rows = csv_rows(name, handle, self.format_for(name), self._report)
        return csv_header(name, rows, self._url_column)

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
            yield from self._read(STDIN, self._stdin or own_stdin(), inbox)
            return
        with reading(path) as handle:
            yield from self._read(path, handle, inbox)

    def _read(self, name: str, handle: BinaryIO, inbox: SitemapInbox) -> Iterator[UrlItem]:
        # For '-' this is the reader's input format, else "lines": format_of("-") is "lines".
        kind = self.format_for(name)
        if kind == "lines":
            yield from read_lines(name, handle, self._report)
        elif kind == "jsonl":
            yield from read_jsonl(name, handle, self._report)
        elif kind == "sitemap":
            sitemap = read_sitemap(name, handle, self._report)
            if sitemap is not None:
                yield from self._listed(SitemapItem(name, 0, inbox), sitemap, inbox)
        else:
            yield from read_csv(
                name, handle, kind, url_column=self._url_column, report=self._report
            )

    def _listed(
        self, item: SitemapItem, sitemap: Sitemap, inbox: SitemapInbox
    ) -> Iterator[UrlItem]:
        """The entries of a sitemap that has been read: pages, or more sitemaps."""
        self.sitemaps += 1
        yield from sitemap_entries(item, sitemap, inbox, self._report)

    def _report(self, name: str, number: int, reason: str) -> None:
        self.malformed += 1
        if self._on_problem is not None:
            self._on_problem(InputProblem(name, number, reason))
