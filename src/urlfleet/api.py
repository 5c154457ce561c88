"""The library's front door: ``fetch`` streams results, ``fetch_all`` returns them in order."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, ParamSpec

from urlfleet.config import DEFAULT_SHARD_SIZE, FetchConfig
from urlfleet.fetching.sessions import SessionFactory
from urlfleet.read.items import UrlItem
from urlfleet.read.revalidation import Validators, validators_from
from urlfleet.record.records import Result
from urlfleet.run.cores import choose_processes
from urlfleet.run.parsing import Parser, parse_in_processes
from urlfleet.run.progress import Progress
from urlfleet.run.runner import Run

if TYPE_CHECKING:
    from distributed import Client

logger = logging.getLogger(__name__)
P = ParamSpec("P")
_OPTION_NAMES = frozenset(f.name for f in fields(FetchConfig))
# What revalidate= takes: a previous run's results file, its records or Results.
Revalidate = Validators | str | os.PathLike[str] | Iterable[Mapping[str, Any] | Result]


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
    parse: Parser | None = None,
    parse_jobs: int | None = None,
    progress: bool = False,
    on_result: Callable[[Result], object] | None = None,
    dask: Client | str | None = None,
    processes: int | str = 1,
    shard_size: int | None = None,
    revalidate: Revalidate | None = None,
    **options: Any,
) -> Iterator[Result]:
    """Fetch ``urls`` politely on many threads; yield each Result as it completes.

    ``urls`` may be any iterable (a generator of millions is fine) of URL strings or
    ``(url, meta)`` pairs; ``meta`` comes back as ``result.meta``. Options are FetchConfig's
    fields, as keywords or as ``config``. ``parse=fn`` runs ``fn(result)`` in ``parse_jobs``
    processes and sets ``result.parsed`` (or ``result.parse_error``). ``progress=True`` shows
    a bar on stderr; ``on_result`` sees every result. Closing the generator early stops
    handing out URLs and lets the threads go.

    ``dask=`` runs on a dask.distributed cluster instead (``urlfleet[dask]``): a ``Client``,
    a scheduler's ``tcp://HOST:PORT``, or ``local:N`` for N worker processes here. Each
    host's URLs go to one worker at a time, in shards of ``shard_size`` (default 1000); see
    ``urlfleet.distributed``. ``processes=N`` runs N worker processes on this machine the
    same way (no dask needed), ``"auto"`` one per usable core for a list whose ``len()`` is
    large enough (the choice is logged on the ``urlfleet.api`` logger); ``jobs`` then counts
    the threads of all processes together.

    ``revalidate=`` a previous run's results (its ``-o`` file, or its Results) asks each URL
    it has validators for with If-None-Match / If-Modified-Since; a 304 is then ok, with
    ``unchanged`` true and no body (see ``urlfleet.read.revalidation``).

    >>> for result in urlfleet.fetch(urls, jobs=64, per_host=4): print(result.url, result.status)
    """
    config = make_config(config, **options)
    count = _processes(processes, urls, config, dask=dask, sessions=session_factory)
    if revalidate is not None:
        urls = validators_from(revalidate).apply(urls)
    if count > 1:
        from urlfleet.distributed.local import fetch_in_processes

        size = len(urls) if isinstance(urls, Sized) else None
        results = fetch_in_processes(urls, config, processes=count, shard_size=shard_size,
                                     size=size)  # fmt: skip
    elif dask is None:
        results = Run(config, session_factory=session_factory).results(urls)
    elif session_factory is not None:
        raise ValueError("session_factory= cannot be used with dask=: sessions are made on the "
                         "workers; pass headers=, cookies=, auth= or proxies= instead")  # fmt: skip
    else:
        from urlfleet.distributed import fetch_distributed

        size_of_shards = shard_size or DEFAULT_SHARD_SIZE
        results = fetch_distributed(urls, config, client=dask, shard_size=size_of_shards)
    if parse is not None:
        results = parse_in_processes(results, parse, parse_jobs)
    if progress or on_result is not None:
        results = _watched(results, progress, on_result)
    return results


def _processes(
    asked: int | str,
    urls: Iterable[UrlItem],
    config: FetchConfig,
    *,
    dask: object,
    sessions: SessionFactory | None,
) -> int:
    # How many processes, refusing what cannot be split between them.
    if dask is not None and asked != 1:
        raise ValueError("processes= cannot be used with dask= (each worker is a process)")
    single_only = None
    if sessions is not None:
        single_only = "session_factory= makes sessions in this process"
    size = len(urls) if isinstance(urls, Sized) else None
    choice = choose_processes(asked, size=size, single_only=single_only)
    if choice.count > 1 and single_only is not None:
        raise ValueError(f"processes={asked!r}: {single_only}")
    if choice.reason is not None:
        logger.info(choice.reason)
    return choice.count


def _watched(
    results: Iterator[Result], progress: bool, on_result: Callable[[Result], object] | None
) -> Iterator[Result]:
    bar = Progress(None, enabled=True if progress else False)
    try:
        for result in results:
            bar.advance(result)
            if on_result is not None:
                on_result(result)
            yield result
    finally:
        bar.close()
        close = getattr(results, "close", None)
        if close is not None:
            close()


def _in_input_order(stream: Callable[P, Iterator[Result]]) -> Callable[P, list[Result]]:
    """``stream``'s twin that waits for every URL and returns the Results in input order:
    same parameters, said once."""

    def fetch_all(*args: P.args, **kwargs: P.kwargs) -> list[Result]:
        """Like ``fetch``, but wait for every URL and return the Results in input order.

        >>> results = urlfleet.fetch_all(["https://example.com/"], jobs=8)
        """
        return sorted(stream(*args, **kwargs), key=lambda result: result.index)

    returning = inspect.signature(stream).replace(return_annotation="list[Result]")
    fetch_all.__signature__ = returning  # type: ignore[attr-defined]
    return fetch_all


fetch_all = _in_input_order(fetch)
