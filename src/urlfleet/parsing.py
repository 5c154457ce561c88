"""The parse stage: CPU work on the bodies, in processes, while threads keep fetching.

Threads are right for waiting on the network and wrong for parsing: the GIL lets one thread
parse at a time. So results go to a pool of worker processes (loky, joblib's process
backend), a bounded number at a time, and come back with ``parsed`` (or ``parse_error``).
A parse that raises costs that one URL its parsed value, never the run.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import replace
from typing import Any

from joblib import cpu_count
from joblib.externals.loky import get_reusable_executor

from urlfleet.records import Result

Parser = Callable[[Result], Any]


def _parse_one(parse: Parser, result: Result) -> tuple[Any, str | None]:
    try:
        return parse(result), None
    except Exception as exc:  # the caller's code: its failure is that URL's, not the run's
        frame = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" ({frame[0].filename}:{frame[0].lineno})" if frame else ""
        return None, f"{type(exc).__name__}: {exc}{where}"


def parse_in_processes(
    results: Iterator[Result], parse: Parser, jobs: int | None = None
) -> Iterator[Result]:
    """Yield each result with ``parsed`` set by ``parse(result)``, run in ``jobs`` processes.

    ``parse`` must be picklable by cloudpickle (a module-level function, a lambda, a
    functools.partial). Results come back as their parses finish.
    """
    workers = max(1, jobs or cpu_count())
    executor = get_reusable_executor(max_workers=workers)
    pending: dict[Future[tuple[Any, str | None]], Result] = {}
    try:
        for result in results:
            pending[executor.submit(_parse_one, parse, result)] = result
            if len(pending) >= 2 * workers:  # enough queued to keep every process busy
                yield from _finished(pending, block=True)
            yield from _finished(pending, block=False)
        while pending:
            yield from _finished(pending, block=True)
    finally:
        for future in pending:
            future.cancel()
        close = getattr(results, "close", None)
        if close is not None:
            close()


def _finished(
    pending: dict[Future[tuple[Any, str | None]], Result], *, block: bool
) -> Iterator[Result]:
    if block:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
    else:
        done = {future for future in pending if future.done()}
    for future in done:
        result = pending.pop(future)
        try:
            parsed, error = future.result()
        except Exception as exc:  # the process died, or the parser could not be pickled
            parsed, error = None, f"{type(exc).__name__}: {exc}"
        yield replace(result, parsed=parsed, parse_error=error)
