"""The progress bar: one tqdm bar on stderr, moved only by the thread that reads results."""

from __future__ import annotations

from typing import Any

from tqdm import tqdm

from urlfleet.records import Result


class Progress:
    """A bar that counts URLs and shows ok/failed; off when stderr is not a terminal.

    ``enabled=None`` leaves the choice to tqdm (on for a terminal), False turns it off.
    """

    def __init__(self, total: int | None, *, enabled: bool | None = None) -> None:
        disable = None if enabled is None else not enabled  # tqdm's None: off unless a TTY
        self._bar: tqdm[Any] = tqdm(total=total, unit="url", dynamic_ncols=True, disable=disable)
        self.ok = 0
        self.failed = 0
        self._dropped = 0

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
        self._bar.set_postfix_str(f"ok={self.ok} failed={self.failed}", refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()
