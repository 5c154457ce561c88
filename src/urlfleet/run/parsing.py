"""The parse stage: CPU work on the bodies, in processes, while threads keep fetching.

Threads are right for waiting on the network and wrong for parsing: the GIL lets one thread
parse at a time. So results go to a pool of worker processes (loky, joblib's process
backend), a bounded number at a time, and come back with ``parsed`` (or ``parse_error``).
A parse that raises, or kills its process, costs that one URL its parsed value, never the run.
"""

from __future__ import annotations

import traceback
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import Any

from joblib import cpu_count
from joblib.externals.loky import get_reusable_executor

from urlfleet.record.records import Result

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

    A parser process that dies (a segfault, ``os._exit``, the OOM killer) breaks the pool
    and fails every parse in it, not just its own: the pool is made anew and those results
    are parsed again one at a time, so that the one whose parse kills its process alone gets
    ``parse_error`` ("the parser process died ...") and the others their ``parsed``.
    """
    workers = max(1, jobs or cpu_count())
    pending: dict[Future[tuple[Any, str | None]], Result] = {}
    suspects: deque[Result] = deque()  # in a pool that died: to be parsed again, alone

    def settle() -> Iterator[Result]:
        # Once nothing else runs, each suspect alone: if it dies now, it was the one.
        while pending:
            yield from _finished(pending, suspects, block=True)
        while suspects:
            result = suspects.popleft()
            future = _executor(workers).submit(_parse_one, parse, result)
            try:
                parsed, error = future.result()
            except BrokenProcessPool as exc:
                parsed, error = None, f"the parser process died ({_last_line(exc)})"
            except Exception as exc:  # the parser could not be pickled, say
                parsed, error = None, f"{type(exc).__name__}: {exc}"
            yield replace(result, parsed=parsed, parse_error=error)

    try:
        for result in results:
            pending[_executor(workers).submit(_parse_one, parse, result)] = result
            if len(pending) >= 2 * workers:  # enough queued to keep every process busy
                yield from _finished(pending, suspects, block=True)
            yield from _finished(pending, suspects, block=False)
            if suspects:
                yield from settle()
        yield from settle()
    finally:
        for future in pending:
            future.cancel()
        close = getattr(results, "close", None)
        if close is not None:
            close()


def _executor(workers: int) -> Any:
    # The same pool while it lives; a new one once a process of it has died.
    return get_reusable_executor(max_workers=workers)


def _finished(
    pending: dict[Future[tuple[Any, str | None]], Result],
    suspects: deque[Result],
    *,
    block: bool,
) -> Iterator[Result]:
    if block:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
    else:
        done = {future for future in pending if future.done()}
    for future in done:
        result = pending.pop(future)
        try:
            parsed, error = future.result()
        except BrokenProcessPool:  # a process of the pool died: whose parse killed it?
            suspects.append(result)
            continue
        except Exception as exc:  # the parser could not be pickled, say
            parsed, error = None, f"{type(exc).__name__}: {exc}"
        yield replace(result, parsed=parsed, parse_error=error)


def _last_line(exc: BaseException) -> str:
    # loky's message ends with the exit codes: "The exit codes of the workers are {EXIT(1)}".
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
