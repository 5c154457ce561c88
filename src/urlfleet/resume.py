"""Resuming: which URLs a results file already holds a final answer for.

A URL is *done* when it has a record that is ok, or a failure that retrying cannot fix (a
4xx other than 408, 425 and 429: the server's final word). Anything else (connection errors,
timeouts, 5xx, 429, URLs never reached) is fetched again. Done URLs are remembered as sorted
8-byte digests, so a million of them take 8 MB, not the hundreds a set of strings would.
"""

from __future__ import annotations

import hashlib
import json
import os
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from urlfleet.retrying import RETRY_STATUSES
from urlfleet.sources import redact_url


def url_digest(url: str) -> int:
    """A 64-bit digest of the URL as records show it (passwords masked)."""
    return int.from_bytes(hashlib.blake2b(redact_url(url).encode(), digest_size=8).digest(), "big")


def is_done(record: dict[str, Any]) -> bool:
    """True when the record is a final outcome that a new attempt would not change."""
    if record.get("ok") is True:
        return True
    status = record.get("status")
    return isinstance(status, int) and 400 <= status < 500 and status not in RETRY_STATUSES


def repair_torn_tail(path: Path) -> int:
    """Cut a half-written last line (from a crash or a kill) off the file; bytes removed."""
    with open(path, "rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        position = size
        while position > 0:
            step = min(65536, position)
            handle.seek(position - step)
            block = handle.read(step)
            newline = block.rfind(b"\n")
            if newline >= 0:
                keep = position - step + newline + 1
                break
            position -= step
        else:
            keep = 0
        if keep < size:
            handle.truncate(keep)
        return size - keep


class DoneUrls:
    """The URLs a results file already has a final record for.

    >>> done = DoneUrls.read(Path("out.jsonl")); "http://a.test/" in done
    """

    def __init__(self, digests: Iterable[int]) -> None:
        self._digests = array("Q", sorted(digests))

    @classmethod
    def read(cls, path: Path, *, on_bad_line: Callable[[int], None] | None = None) -> DoneUrls:
        """Read the done URLs of a JSONL results file (a missing file holds none)."""
        if not path.exists():
            return cls(())
        return cls(_done_digests(path, on_bad_line))

    def __len__(self) -> int:
        return len(self._digests)

    def __contains__(self, url: object) -> bool:
        if not isinstance(url, str):
            return False
        digest = url_digest(url)
        index = bisect_left(self._digests, digest)
        return index < len(self._digests) and self._digests[index] == digest

    def skip_done(self, urls: Iterable[str], skipped: list[int]) -> Iterator[str]:
        """The URLs not done yet; counts the others in ``skipped[0]``."""
        for url in urls:
            if url in self:
                skipped[0] += 1
            else:
                yield url


def _done_digests(path: Path, on_bad_line: Callable[[int], None] | None) -> Iterator[int]:
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                record = json.loads(line)
                url = record["url"]
            except (ValueError, KeyError, TypeError):
                if on_bad_line is not None and line.strip():
                    on_bad_line(number)
                continue
            if isinstance(url, str) and is_done(record):
                yield url_digest(url)
