"""Rows: one request per JSON Lines object or CSV row, as a UrlRequest.

A JSON Lines row is ``{"url", "method", "headers", "data", "meta", "etag", "last_modified"}``;
any other key goes into ``meta``. The merge rule: with no other keys, ``meta`` is the given
value as it is (any JSON value); with other keys, ``meta`` is a dict of the given ``meta``
object's keys (it must then be an object or absent) plus the other keys, and a key in both
is a bad row: nothing is silently overwritten.

A CSV row gives its URL column; every other column goes into ``meta`` as {column: value}.

These functions say what is wrong with a row (a ``RowError``); the reader reports it as
``FILE:LINE: reason`` and goes on. Whether the URL can be fetched is the reader's check,
the same one for every kind of list.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from urlfleet.read.items import UrlRequest

ROW_KEYS = ("url", "method", "headers", "data", "meta", "etag", "last_modified")
_TEXT_KEYS = ("method", "data", "etag", "last_modified")  # a string or null each


class RowError(ValueError):
    """Why a row is not a request, in plain words."""


def json_row(line: str) -> UrlRequest:
    """The request of one JSON Lines row."""
    try:
        row = json.loads(line)
    except RecursionError:
        raise RowError("not JSON (nested too deep)") from None
    except ValueError as exc:
        raise RowError(f"not JSON ({exc})") from None
    if not isinstance(row, dict):
        raise RowError(f"not a JSON object (a {_json_type(row)})")
    url = row.get("url")
    if not isinstance(url, str):
        raise RowError("no url" if url is None else f"url is a {_json_type(url)}, not a string")
    for key in _TEXT_KEYS:
        if row.get(key) is not None and not isinstance(row[key], str):
            raise RowError(f"{key} is a {_json_type(row[key])}, not a string")
    try:
        return UrlRequest(
            url, method=row.get("method"), headers=_headers(row.get("headers")),
            data=row.get("data"), meta=_meta(row), etag=row.get("etag"),
            last_modified=row.get("last_modified"),
        )  # fmt: skip
    except ValueError as exc:  # UrlRequest's own checks: a method that is not a word
        raise RowError(str(exc)) from None


def _headers(value: Any) -> dict[str, str | None]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RowError(f"headers is a {_json_type(value)}, not an object")
    for name, text in value.items():
        if text is not None and not isinstance(text, str):
            # The value is not shown: a header may hold a secret.
            raise RowError(f"header {name!r} is a {_json_type(text)}, not a string")
        if not name.strip() or any(ch in name for ch in ":\r\n"):
            raise RowError(f"bad header name {name!r}")
        if text is not None and ("\r" in text or "\n" in text):
            raise RowError(f"header {name!r} has a line break in its value (not shown)")
    return value


def _meta(row: dict[str, Any]) -> Any:
    extra = {key: value for key, value in row.items() if key not in ROW_KEYS}
    given = row.get("meta")
    if not extra:
        return given
    if given is None:
        return extra
    if not isinstance(given, dict):
        raise RowError(f"meta is a {_json_type(given)}, so the other keys cannot join it")
    both = sorted(set(given) & set(extra))
    if both:
        raise RowError(f"key {both[0]!r} is both in meta and beside it")
    return {**given, **extra}


def csv_row(header: Sequence[str], row: Sequence[str], url_at: int) -> UrlRequest:
    """The request of one CSV row, given its header and where the URL column is."""
    if len(row) != len(header):
        raise RowError(f"{len(row)} fields, but the header has {len(header)}")
    url = row[url_at].strip()
    if not url:
        raise RowError(f"empty {header[url_at]!r} column")
    meta = {
        name: value for i, (name, value) in enumerate(zip(header, row, strict=True)) if i != url_at
    }
    return UrlRequest(url, meta=meta or None)


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")
