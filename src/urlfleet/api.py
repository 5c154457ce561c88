"""The library's front door: ``fetch`` streams results, ``fetch_all`` returns them in order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import fields, replace
from typing import Any

from urlfleet.config import FetchConfig
from urlfleet.fetcher import SessionFactory
from urlfleet.records import Result
from urlfleet.runner import Run, UrlItem

_OPTION_NAMES = frozenset(f.name for f in fields(FetchConfig))


def make_config(config: FetchConfig | None = None, **options: Any) -> FetchConfig:
    """A FetchConfig from an optional base and keyword overrides (validated the same way).

    >>> make_config(jobs=64, per_host=4)
    """
    unknown = sorted(set(options) - _OPTION_NAMES)
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(unknown)}")
    return replace(config or FetchConfig(), **options)


def fetch(
    urls: Iterable[UrlItem],
    config: FetchConfig | None = None,
    *,
    session_factory: SessionFactory | None = None,
    **options: Any,
) -> Iterator[Result]:
    """Fetch ``urls`` politely on many threads; yield each Result as it completes.

    ``urls`` may be any iterable (a generator of millions is fine) of URL strings or
    ``(url, meta)`` pairs; ``meta`` comes back as ``result.meta``. Closing the generator early
    stops handing out URLs.

    >>> for result in urlfleet.fetch(urls, jobs=64, per_host=4): print(result.url, result.status)
    """
    run = Run(make_config(config, **options), session_factory=session_factory)
    return run.results(urls)


def fetch_all(
    urls: Iterable[UrlItem],
    config: FetchConfig | None = None,
    *,
    session_factory: SessionFactory | None = None,
    **options: Any,
) -> list[Result]:
    """Like ``fetch``, but wait for every URL and return the Results in input order.

    >>> results = urlfleet.fetch_all(["https://example.com/"], jobs=8)
    """
    results = list(fetch(urls, config, session_factory=session_factory, **options))
    results.sort(key=lambda result: result.index)
    return results
