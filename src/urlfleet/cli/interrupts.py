"""Ctrl-C and SIGTERM during a run: stop cleanly, keep every record, never tear a line.

First signal: hand out no more URLs and give the requests in flight ``grace`` seconds to
finish and be recorded. When they do, the run ends normally with its report. When they do
not, or on a second signal, the records written so far are flushed and synced and the
process exits at once (worker threads cannot be stopped mid-request, only abandoned).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from urlfleet.cli.exits import EXIT_INTERRUPTED
from urlfleet.record.records import RecordWriter

DEFAULT_GRACE = 3.0


class Interrupts:
    """Signal handling for one run; a context manager that restores the old handlers.

    >>> with Interrupts(run.stop, writer, grace=3.0, last_words=summary) as interrupts: ...
    """

    def __init__(
        self,
        stop: Callable[[], None],
        writer: RecordWriter,
        *,
        grace: float = DEFAULT_GRACE,
        last_words: Callable[[], str] = lambda: "",
        say: Callable[[str], None] = lambda text: print(text, file=sys.stderr),
        before_exit: Callable[[], None] = lambda: None,
    ) -> None:
        """``before_exit`` runs when the run is abandoned, just before the exit (say, to
        write the cookie jar); an error it raises is said, and the exit goes on."""
        self._stop = stop
        self._writer = writer
        self._grace = grace
        self._last_words = last_words
        self._say = say
        self._before_exit = before_exit
        self._timer: threading.Timer | None = None
        self._previous: dict[int, Any] = {}
        self.signals = 0

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    @property
    def interrupted(self) -> bool:
        return self.signals > 0

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals > 1:
            self.abandon()
        self._say(
            f"\ninterrupted: no new URLs; waiting up to {self._grace:g} s for requests in "
            "flight (Ctrl-C again to stop now)"
        )
        self._stop()
        self._timer = threading.Timer(self._grace, self.abandon)
        self._timer.daemon = True
        self._timer.start()

    def abandon(self) -> None:
        """Flush and sync the records, say what happened, exit 130 now."""
        # The writer's lock makes a deadline thread wait for a line being written; in the
        # main thread (a second Ctrl-C) the lock is re-entrant and each line is one write call.
        with self._writer.lock:
            try:
                self._writer.sync()
            except OSError:
                pass
            self._say(self._last_words())
            try:
                self._before_exit()
            except Exception as exc:  # exiting anyway: say why it failed, as one line
                self._say(f"error: {exc}")
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)
