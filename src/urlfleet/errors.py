"""urlfleet's exceptions: a small tree with one root.

    UrlfleetError
     ├── InputError        (also a ValueError) bad or unreadable input; the CLI exits 2
     ├── RetryableStatus   an HTTP status worth retrying; lives only inside the retry policy
     ├── RetryRequested    the caller's retry_if said a response needs another attempt
     ├── DeadlineExceeded  an attempt ran past --max-time (connect, headers and body together)
     ├── NotAccepted       a final response whose Content-Type --accept-type does not take
     └── SaveError         --save-dir cannot take a body (disk full, no permission): ends the run

This module imports nothing from the package, so every other module can import it.
"""

from __future__ import annotations


class UrlfleetError(Exception):
    """Root of every exception urlfleet raises on purpose."""


class InputError(UrlfleetError, ValueError):
    """An input file or option that cannot be used: ``InputError("urls.txt: cannot read")``."""


class RetryableStatus(UrlfleetError):
    """A response whose status says "try again later" (429, 503, ...).

    ``retry_after`` holds the server's Retry-After, in seconds from when the response arrived,
    when it sent a usable one.
    """

    def __init__(self, status: int, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class RetryRequested(UrlfleetError):
    """The ``retry_if`` hook judged a response (say, a 200 "slow down" page) not good enough."""


class DeadlineExceeded(UrlfleetError):
    """An attempt did not complete within ``max_time`` seconds, however it was trickling in."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no complete response within --max-time {seconds:g} s")
        self.seconds = seconds


class NotAccepted(UrlfleetError):
    """A response skipped after its headers: ``--accept-type`` does not take its Content-Type."""

    def __init__(self, content_type: str) -> None:
        super().__init__(f"content type {content_type} not accepted")
        self.content_type = content_type


class SaveError(UrlfleetError):
    """A body could not be written under ``--save-dir``; the run stops, records kept so far."""


class ClusterError(UrlfleetError):
    """A shard failed on a dask worker for a reason of the worker's own (not a URL's)."""
