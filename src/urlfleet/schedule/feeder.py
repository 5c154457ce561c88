"""The frontier's input side: a feeder thread reads the list into a bounded queue.

The input is read never under the frontier's lock: a slow stdin, or a generator that waits for
results it has not seen yet, stalls no thread. The frontier takes jobs in from the queue, a few
at a time and under its own lock, only when its window has room for them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

from urlfleet.schedule.job import Job

FEED_AHEAD = 256  # URLs the feeder may read past what the frontier has taken in (at most)
FULL_FEED_WAIT = 1.0  # a feeder waiting on a full feed looks for a close at least this often
_END = object()  # the feeder's last word


class Feeder:
    """Reads jobs into a bounded feed on a thread of its own.

    It shares the frontier's condition: ``admit`` runs under it, and the feeder thread takes
    it only to notify, never while it reads.

    >>> feeder.start(jobs); ...; feeder.admit(64)   # under the frontier's lock
    """

    def __init__(
        self,
        cond: threading.Condition,
        take_in: Callable[[Job], None],
        closed: Callable[[], bool],
        *,
        window: int,
    ) -> None:
        self._cond = cond
        self._take_in = take_in  # the frontier's: a job read, into its queues (under its lock)
        self._closed = closed
        self._window = window
        self._feed: queue.Queue[object] = queue.Queue(FEED_AHEAD)
        self.fed_all = True  # no feeder running, or it has said its last word
        self._input_error: BaseException | None = None

    def start(self, jobs: Iterator[Job]) -> threading.Thread:
        """Start reading ``jobs`` into the feed, on a thread of its own (returned)."""
        with self._cond:
            self._feed, self.fed_all = queue.Queue(min(FEED_AHEAD, self._window)), False
        feeder = threading.Thread(
            target=self._read, args=(jobs, self._feed), name="urlfleet-feeder", daemon=True
        )
        feeder.start()
        return feeder

    def _read(self, jobs: Iterator[Job], feed: queue.Queue[object]) -> None:
        try:
            for job in jobs:
                if not self._put(feed, job):
                    return
                if feed.qsize() == 1:  # the only one: threads may be waiting for input
                    with self._cond:
                        self._cond.notify()  # the one it wakes takes in all that came since
        except Exception as exc:  # a list file that fails mid-read ends the input, not the run
            self._input_error = exc
        self._put(feed, _END)
        with self._cond:
            self._cond.notify_all()

    def _put(self, feed: queue.Queue[object], item: object) -> bool:
        # A full feed waits for the frontier to take some in, but never past a close.
        while not self._closed():
            try:
                feed.put(item, timeout=FULL_FEED_WAIT)
                return True
            except queue.Full:
                continue
        return False

    def input_error(self) -> BaseException | None:
        """The exception that stopped reading the input early, if any."""
        return self._input_error

    def admit(self, most: int) -> int:
        """Hand up to ``most`` jobs that have been read to the frontier; under its lock."""
        admitted = 0
        if self._feed.empty():  # most polls find nothing new: no exception raised for it
            return 0
        while admitted < most and not self.fed_all:
            try:
                item = self._feed.get_nowait()
            except queue.Empty:
                break
            if item is _END:
                self.fed_all = True
                break
            assert isinstance(item, Job)
            admitted += 1
            self._take_in(item)
        return admitted
