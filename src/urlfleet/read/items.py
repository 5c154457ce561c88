"""What one list item may say about its own request, besides its URL.

A list is URL strings, ``(url, meta)`` pairs, or ``UrlRequest`` values: a JSON Lines or CSV
row, a sitemap entry, or a URL with the validators of its last fetch (``--revalidate``).
Everything else about a request (User-Agent, headers for every URL, cookies, proxies)
comes from the FetchConfig; what a ``UrlRequest`` sets wins over it for that URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from urlfleet.read.sitemaps import SitemapItem


@dataclass(frozen=True, slots=True)
class UrlRequest:
    """One URL and how to ask for it.

    >>> UrlRequest("https://example.com/api", method="POST", data=b'{"q": 1}',
    ...            headers={"Content-Type": "application/json"}, meta={"id": 7})
    """

    url: str
    method: str | None = None  # None: the run's (GET, or HEAD with head=True)
    headers: Mapping[str, str | None] = field(default_factory=dict)  # None: leave it out
    data: bytes | None = None  # the request body
    meta: Any = None  # comes back as result.meta and the record's "meta"
    # Validators of the last fetch: sent as If-None-Match and If-Modified-Since, and a 304
    # then counts as ok and unchanged.
    etag: str | None = None
    last_modified: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.url, str):
            raise ValueError(f"url must be a string, got {type(self.url).__name__}")
        if self.method is not None:
            if not isinstance(self.method, str) or not self.method.isalpha():
                raise ValueError(f"bad method {self.method!r}")
            object.__setattr__(self, "method", self.method.upper())
        if isinstance(self.data, str):
            object.__setattr__(self, "data", self.data.encode("utf-8"))
        if self.data is not None and not isinstance(self.data, bytes):
            raise ValueError(f"data must be bytes or a string, got {type(self.data).__name__}")
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))

    def __reduce__(self) -> tuple[Any, ...]:
        # A read-only mapping does not pickle (dask sends these to workers).
        return (UrlRequest, (self.url, self.method, dict(self.headers), self.data, self.meta,
                             self.etag, self.last_modified))  # fmt: skip

    @property
    def conditional(self) -> bool:
        """True when it carries validators: a 304 answer then means "unchanged"."""
        return self.etag is not None or self.last_modified is not None


# A SitemapItem is a sitemap to fetch whose URLs join the list (see sitemaps).
UrlItem = str | tuple[str, Any] | UrlRequest | SitemapItem


def split_item(item: Any) -> tuple[str, Any, UrlRequest | None]:
    """``(url, meta, request)`` of a list item; ``request`` is None for a plain URL."""
    if isinstance(item, UrlRequest):
        return item.url, item.meta, item
    if isinstance(item, tuple) and len(item) == 2:
        return item[0], item[1], None
    return item, None, None
