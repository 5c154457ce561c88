"""Sitemaps: XML lists of URLs (``urlset``) or of more sitemaps (``sitemapindex``).

A sitemap given as a file is read here; one given as a URL, and every child of an index, is
fetched as a job like any other (the frontier's per-host limit, gap, pause, robots.txt and
retries all apply), whose answer is not a record but more input: the fetching thread hands
the parsed sitemap to the reader's :class:`SitemapInbox`, and the reader (in the feeder
thread) turns its entries into list items. A sitemap that cannot be fetched or parsed gets a
record saying why; a good one gets none.

Parsing is bounded and safe: at most ``MAX_BYTES`` of XML (after gzip, and never more than
``--max-bytes``), ``MAX_URLS`` entries (the protocol's limits), ``MAX_DEPTH`` levels of
nested indexes, and no DOCTYPE at all, so no entity (internal or external) is ever expanded.
Namespaces are ignored: sites use several, and some none.
"""

from __future__ import annotations

import threading
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

MAX_BYTES = 50 * 1024 * 1024  # the protocol's limit on an uncompressed sitemap
MAX_URLS = 50_000  # the protocol's limit on the entries of one sitemap
MAX_DEPTH = 3  # an index may list indexes (sites do), this many levels below the given one
_MAX_TEXT = 1 << 17  # characters kept of one <loc>: past any URL urlfleet would fetch
_GZIP_MAGIC = b"\x1f\x8b"
_WAIT = 1.0  # a reader waiting for sitemaps looks at the inbox at least this often


class SitemapError(ValueError):
    """A sitemap that cannot be read: the reason, in plain words, and the line it is on."""

    def __init__(self, reason: str, line: int = 1) -> None:
        super().__init__(reason)
        self.line = line


class Entry(NamedTuple):
    """One ``<url>`` or ``<sitemap>`` of a sitemap: its ``<loc>``, ``<lastmod>`` and line."""

    line: int
    loc: str
    lastmod: str | None = None


@dataclass(frozen=True, slots=True)
class Sitemap:
    """A parsed sitemap: ``index`` when its entries are sitemaps, not pages."""

    index: bool
    entries: tuple[Entry, ...]
    dropped: int = 0  # entries past MAX_URLS, not kept


@dataclass(frozen=True, eq=False, slots=True)
class SitemapItem:
    """A list item that is a sitemap to fetch: its answer goes to ``inbox``, not a record."""

    url: str
    depth: int  # 0 for a sitemap given as input, one more for each index above it
    inbox: SitemapInbox = field(repr=False)
    meta: Any = None  # {"sitemap": the index that listed it}, or None


def unpack(content: bytes, limit: int) -> bytes:
    """``content``, gunzipped when it is gzip (a ``.xml.gz`` sent as is), at most ``limit``
    bytes either way; raises SitemapError past that, so a gzip bomb stops at ``limit``."""
    if not content.startswith(_GZIP_MAGIC):
        if len(content) > limit:
            raise SitemapError(f"larger than {limit} bytes")
        return content
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(content, limit + 1)
    except zlib.error as exc:
        raise SitemapError(f"not valid gzip ({exc})") from exc
    if len(data) > limit:
        raise SitemapError(f"larger than {limit} bytes once unpacked")
    return data


def parse(content: bytes, *, max_urls: int = MAX_URLS) -> Sitemap:
    """The entries of a sitemap or sitemap index; raises SitemapError for anything else."""
    from xml.parsers import expat  # here: most runs read no sitemap

    reader = _Reader(max_urls)
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.StartDoctypeDeclHandler = _no_doctype
    parser.EntityDeclHandler = _no_doctype
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.text
    reader.parser = parser
    try:
        parser.Parse(content, True)
    except expat.ExpatError as exc:
        reason = f"not well-formed XML ({expat.ErrorString(exc.code)}, line {exc.lineno})"
        raise SitemapError(reason, exc.lineno) from None
    if reader.root is None:
        raise SitemapError("no XML element in it")
    return Sitemap(reader.root == "sitemapindex", tuple(reader.entries), reader.dropped)


def _no_doctype(*_: Any) -> None:
    # A sitemap has no DTD; one here can only be there to expand entities (a billion laughs).
    raise SitemapError("a DOCTYPE is not allowed in a sitemap")


class _Reader:
    """The expat callbacks: <loc> and <lastmod> under each <url> or <sitemap> of the root."""

    def __init__(self, max_urls: int) -> None:
        self.max_urls = max_urls
        self.parser: Any = None
        self.root: str | None = None
        self.entries: list[Entry] = []
        self.dropped = 0
        self._path: list[str] = []
        self._fields: dict[str, str] = {}
        self._line = 0
        self._text: list[str] | None = None

    def start(self, name: str, _attrs: Any) -> None:
        local = name.rpartition(" ")[2]
        if self.root is None:
            if local not in ("urlset", "sitemapindex"):
                line = self.parser.CurrentLineNumber
                raise SitemapError(f"not a sitemap (the root element is <{local}>)", line)
            self.root = local
        depth = len(self._path)
        self._path.append(local)
        if depth == 1 and local in ("url", "sitemap"):
            self._fields, self._line = {}, self.parser.CurrentLineNumber
        elif depth == 2 and local in ("loc", "lastmod"):
            self._text = []

    def text(self, data: str) -> None:
        if self._text is not None and sum(map(len, self._text)) < _MAX_TEXT:
            self._text.append(data)

    def end(self, _name: str) -> None:
        local = self._path.pop()
        depth = len(self._path)
        if depth == 2 and self._text is not None:
            self._fields[local] = "".join(self._text).strip()
            self._text = None
        elif depth == 1 and local in ("url", "sitemap"):
            self._entry()

    def _entry(self) -> None:
        loc = self._fields.get("loc", "")
        if len(self.entries) >= self.max_urls:
            self.dropped += 1
            return
        self.entries.append(Entry(self._line, loc, self._fields.get("lastmod") or None))


class SitemapInbox:
    """Where fetched sitemaps wait for the reader that listed them; thread-safe.

    A run calls ``expect`` for each sitemap job it makes and ``deliver`` when the job ends
    (None: it failed, and has a record). The reader, once its own input is read, waits in
    ``next`` while any sitemap it listed is still out, and ends when none is.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._ready: deque[tuple[SitemapItem, Sitemap]] = deque()
        self._out = 0
        self._closed = False

    def expect(self) -> None:
        """A sitemap job was made: the reader must wait for its answer."""
        with self._cond:
            self._out += 1

    def deliver(self, item: SitemapItem, sitemap: Sitemap | None) -> None:
        """A sitemap job ended: its parsed sitemap, or None when it failed."""
        with self._cond:
            self._out -= 1
            if sitemap is not None:
                self._ready.append((item, sitemap))
            self._cond.notify_all()

    def close(self) -> None:
        """The run is over: nothing more will come, a waiting reader ends."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def ready(self) -> tuple[SitemapItem, Sitemap] | None:
        """A sitemap that has come, without waiting; None when none has."""
        if not self._ready:  # a cheap look first: the reader asks after every line
            return None
        with self._cond:
            return self._ready.popleft() if self._ready else None

    def next(self) -> tuple[SitemapItem, Sitemap] | None:
        """The next sitemap to come, waiting while any is out; None when none will."""
        with self._cond:
            while not self._ready and self._out > 0 and not self._closed:
                self._cond.wait(_WAIT)
            return self._ready.popleft() if self._ready else None
