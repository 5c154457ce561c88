"""The progress bar: one tqdm bar on stderr, moved only by the thread that reads results."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from tqdm import tqdm

from urlfleet.record.records import Result

PAUSED_EVERY = 0.5  # seconds between counts of paused hosts (a look at every host)


class Progress:
    """A bar that counts URLs and shows ok/failed; off when stderr is not a terminal.

    ``enabled=None`` leaves the choice to tqdm (on for a terminal), False turns it off.
    ``total`` may be a function that counts it (a pass over the list): it is called only
    when the bar shows, in a thread of its own, so the first request need not wait for it;
    the bar has its total from the first URL finished after the count.
    """

    def __init__(
        self,
        total: int | None | Callable[[], int | None],
        *,
        enabled: bool | None = None,
        paused_hosts: Callable[[], int] | None = None,
    ) -> None:
        disable = None if enabled is None else not enabled  # tqdm's None: off unless a TTY
        known = None if callable(total) else total
        self._bar: tqdm[Any] = tqdm(total=known, unit="url", dynamic_ncols=True, disable=disable)
        self.ok = 0
        self.failed = 0
        self._dropped = 0
        self._paused_hosts = paused_hosts
        self._paused = 0
        self._looked = 0.0
        self._counted: int | None = None  # set by the counting thread, read by advance()
        if callable(total) and not self._bar.disable:
            threading.Thread(target=self._count, args=(total,), name="urlfleet-count",
                             daemon=True).start()  # fmt: skip

    def _count(self, count: Callable[[], int | None]) -> None:
        self._counted = count()

    def advance(self, result: Result, *, dropped: int = 0) -> None:
        """Count one finished URL; ``dropped`` is how many listed lines turned out not to be
        URLs to fetch so far (duplicates, malformed), which the total no longer includes."""
        if result.ok:
            self.ok += 1
        else:
            self.failed += 1
        if self._bar.disable:
            return
        if self._bar.total is None and self._counted is not None:
            self._bar.total = self._counted - dropped  # what was dropped so far is not in it
            self._dropped = dropped
        elif dropped != self._dropped and self._bar.total is not None:
            self._bar.total -= dropped - self._dropped
            self._dropped = dropped
        now = time.monotonic()
        if self._paused_hosts is not None and now - self._looked > PAUSED_EVERY:
            self._paused, self._looked = self._paused_hosts(), now
        paused = f" paused_hosts={self._paused}" if self._paused else ""
        self._bar.set_postfix_str(f"ok={self.ok} failed={self.failed}{paused}", refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()
