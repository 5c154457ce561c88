"""Media types: which responses ``--accept-type`` lets through to their body.

A pattern is a media range as in an Accept header, ``type/subtype``, where either part may
hold ``*`` (``text/*``, ``application/*+xml``, ``*/*``). It is matched, case-insensitively,
against the Content-Type's media type without its parameters (``; charset=...``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

# RFC 9110 tokens on both sides of the slash; "*" is a token character too.
_PATTERN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+/[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_SHOWN = 100  # characters of a Content-Type that a record repeats at most


def media_patterns(value: str | Iterable[str]) -> tuple[str, ...]:
    """Patterns, lower-cased, from ``"text/html,text/*"`` or a list of such strings.

    >>> media_patterns(["text/HTML", "application/*+xml,image/*"])
    ('text/html', 'application/*+xml', 'image/*')
    """
    items = [value] if isinstance(value, str) else list(value)
    patterns = [part.strip().lower() for item in items for part in str(item).split(",")]
    for pattern in patterns:
        if not _PATTERN.match(pattern):
            raise ValueError(f"bad media type pattern {pattern!r}: want type/subtype, e.g. text/*")
    return tuple(patterns)


def media_type(content_type: str | None) -> str | None:
    """The media type of a Content-Type value, lower-cased, without parameters; None if none."""
    if content_type is None:
        return None
    found = content_type.partition(";")[0].strip().lower()
    return found or None


def accepts(patterns: Iterable[str], content_type: str | None) -> bool:
    """Whether a response of ``content_type`` matches one of ``patterns`` (a missing one never).

    >>> accepts(["text/*"], "text/html; charset=utf-8")
    True
    """
    found = media_type(content_type)
    return found is not None and any(_matches(pattern, found) for pattern in patterns)


def _matches(pattern: str, found: str) -> bool:
    return _compiled(pattern).fullmatch(found) is not None


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    # "*" stands for any run of characters within its part, never across the slash.
    return re.compile("[^/]*".join(re.escape(piece) for piece in pattern.split("*")))


def shown(content_type: str | None) -> str:
    """A Content-Type as a record names it: its media type, cut short; ``(none)`` if none."""
    found = media_type(content_type)
    return "(none)" if found is None else found[:_SHOWN]
