"""Revalidation: ask again only for what changed, with the validators of a previous run.

A previous run's records (its ``-o``, JSON Lines or CSV) hold each URL's ``etag`` and
``last_modified``. A URL's *last* record decides, as for ``--resume``; its validators count
only when that record is ok (a failure's validators describe no copy anyone kept). Those
URLs' requests then carry ``If-None-Match`` / ``If-Modified-Since``, and a 304 answer is a
record with ``ok`` and ``unchanged`` true, its body neither read nor saved again.

A list item's own validators (a row's ``etag`` / ``last_modified``) win over the previous
run's; a request that is not a GET or HEAD is left as it is.

>>> items = Validators.read(Path("last.jsonl")).apply(urls)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any, NamedTuple

from urlfleet.errors import InputError
from urlfleet.read.items import UrlItem, UrlRequest, split_item
from urlfleet.read.resume import NotResultsFile, numbered_records
from urlfleet.read.sitemaps import SitemapItem
from urlfleet.record.records import Result
from urlfleet.urls import redact_url

_REVALIDATED_METHODS = (None, "GET", "HEAD")


class Validator(NamedTuple):
    """What a URL's last good fetch said of its copy."""

    etag: str | None
    last_modified: str | None


class Validators:
    """The validators of each URL's last good record, keyed by the URL as records show it.

    >>> Validators.read(Path("last.csv")).get("https://example.com/")
    """

    def __init__(self, by_url: Mapping[str, Validator] | None = None) -> None:
        self._by_url = dict(by_url or {})

    def __len__(self) -> int:
        return len(self._by_url)

    def get(self, url: str) -> Validator | None:
        """The validators for ``url`` (passwords masked as in records), None when none."""
        return self._by_url.get(redact_url(url))

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any] | Result]) -> Validators:
        """From records (dicts as written, or Results); later records replace earlier."""
        by_url: dict[str, Validator] = {}
        for item in records:
            record = item.to_record() if isinstance(item, Result) else item
            _remember(by_url, record)
        return cls(by_url)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Validators:
        """From a results file, JSON Lines or CSV; InputError ``FILE:LINE: why`` for a line
        that is not a record, or a file that cannot be read."""
        try:
            return cls.from_records(_records(path))
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc

    def apply(self, items: Iterable[UrlItem]) -> Iterator[UrlItem]:
        """The list items, those with validators here made conditional requests."""
        for item in items:
            yield item if isinstance(item, SitemapItem) else self._conditional(item)

    def _conditional(self, item: UrlItem) -> UrlItem:
        url, meta, asked = split_item(item)
        found = self.get(url) if isinstance(url, str) else None
        if found is None:
            return item
        if asked is None:
            return UrlRequest(url, meta=meta, etag=found.etag, last_modified=found.last_modified)
        if asked.conditional or asked.method not in _REVALIDATED_METHODS:
            return item  # its own validators win; a POST is never "not modified"
        return replace(asked, etag=found.etag, last_modified=found.last_modified)


def validators_from(
    source: Validators | str | os.PathLike[str] | Iterable[Mapping[str, Any] | Result],
) -> Validators:
    """Validators from a results file's path, records, Results, or Validators as they are."""
    if isinstance(source, Validators):
        return source
    if isinstance(source, str | os.PathLike):
        return Validators.read(source)
    return Validators.from_records(source)


def _remember(by_url: dict[str, Validator], record: Mapping[str, Any]) -> None:
    url, etag, modified = record.get("url"), record.get("etag"), record.get("last_modified")
    if not isinstance(url, str):
        return
    good = record.get("ok") is True
    etag, modified = _usable(etag), _usable(modified)
    if good and (etag or modified):
        by_url[url] = Validator(etag, modified)
    else:
        by_url.pop(url, None)  # its last record has nothing to revalidate with


def _usable(value: Any) -> str | None:
    # A validator goes into a header: one with a line break or NUL cannot, and is no validator.
    if not isinstance(value, str) or not value or any(c in value for c in "\r\n\x00"):
        return None
    return value


def _records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    try:
        for number, record in numbered_records(path):
            if record is None:
                raise InputError(f"{path}:{number}: --revalidate: not a urlfleet record")
            yield record
    except NotResultsFile as exc:
        raise InputError(f"{path}:{exc.line}: --revalidate: {exc}") from None
