"""The progress bar: one tqdm bar on stderr, moved only by the thread that reads results."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tqdm import tqdm

from urlfleet.records import Result

PAUSED_EVERY = 0.5  # seconds between counts of paused hosts (a look at every host)


class Progress:
    """A bar that counts URLs and shows ok/failed; off when stderr is not a terminal.

    ``enabled=None`` leaves the choice to tqdm (on for a terminal), False turns it off.
    """

    def __init__(
        self,
        total: int | None,
        *,
        enabled: bool | None = None,
        paused_hosts: Callable[[], int] | None = None,
    ) -> None:
        disable = None if enabled is None else not enabled  # tqdm's None: off unless a TTY
        self._bar: tqdm[Any] = tqdm(total=total, unit="url", dynamic_ncols=True, disable=disable)
        self.ok = 0
        self.failed = 0
        self._dropped = 0
        self._paused_hosts = paused_hosts
        self._paused = 0
        self._looked = 0.0

    def advance(self, result: Result, *, dropped: int = 0) -> None:
        """Count one finished URL; ``dropped`` is how many listed lines turned out not to be
        URLs to fetch so far (duplicates, malformed), which the total no longer includes."""
        if result.ok:
            self.ok += 1
        else:
            self.failed += 1
        if self._bar.disable:
            return
        if dropped != self._dropped and self._bar.total is not None:
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
