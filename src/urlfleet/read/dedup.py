"""Dropping exact duplicates: each list item is remembered as a 64-bit digest in a compact
table (about 16 bytes a URL, not strings), so a list of millions of URLs is deduplicated
without holding them.
"""

from __future__ import annotations

import json
from array import array

from urlfleet.read.items import UrlItem, UrlRequest, split_item
from urlfleet.read.sitemaps import SitemapItem
from urlfleet.urls import url_digest


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
