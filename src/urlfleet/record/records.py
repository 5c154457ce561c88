"""Result: what became of one URL, and the JSON line it is written as.

The first fields of Result are exactly the contract's JSONL keys, in contract order, so the
record is those fields and nothing more needs to be said about the wire format.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import IO, Any, Protocol

# The contract's keys, in contract order; `truncated`, `redirects`, `error_kind` (one of
# failures.ERROR_KINDS, None when ok), what the final response said of itself, and `meta`
# (what the list said of the URL) follow. `meta` stays last: a reader's eye ends on it.
RECORD_FIELDS = (
    "url", "ok", "status", "error", "attempts", "elapsed_s", "bytes", "host", "final_url",
    "saved_to", "truncated", "redirects", "error_kind", "content_type", "content_encoding",
    "fetched_at", "started_s", "ttfb_s", "sha256", "etag", "last_modified", "unchanged", "meta",
)  # fmt: skip
# With --record-headers, the final response's headers go just before `meta`.
HEADERS_FIELD = "headers"


@dataclass(frozen=True, kw_only=True, slots=True)
class Result:
    """One URL's outcome: the JSON record's keys as attributes, plus the body and headers.

    >>> result.ok, result.status, len(result.content)
    """

    url: str
    ok: bool
    status: int | None
    error: str | None
    attempts: int
    elapsed_s: float
    bytes: int
    host: str
    final_url: str | None = None
    saved_to: str | None = None
    truncated: bool = False
    redirects: int = 0
    error_kind: str | None = None
    content_type: str | None = None  # the final response's Content-Type
    content_encoding: str | None = None  # its Content-Encoding (the body is kept decoded)
    fetched_at: str | None = None  # UTC, ISO 8601 with "Z": when the final response was read
    started_s: float | None = None  # seconds from the run's start to the URL's first request
    ttfb_s: float | None = None  # seconds from writing the final request to its headers
    sha256: str | None = None  # of the body as kept (decoded); None when none was read
    etag: str | None = None  # the response's validators, for --revalidate next time
    last_modified: str | None = None
    unchanged: bool = False  # a 304 answer to a conditional request
    meta: Any = None  # a row's other keys or columns, a sitemap's lastmod; None: nothing
    # Not part of the record: for library users and the report.
    content: builtins.bytes = field(default=b"", repr=False)  # the field `bytes` shadows it
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    index: int = field(default=-1, repr=False)
    requests: int = field(default=0, repr=False)  # HTTP requests made: attempts and redirect hops
    busy_s: float = field(default=0.0, repr=False)  # time spent holding a host's slot
    throttled: int = field(default=0, repr=False)  # 429 and 503 answers on the way
    started: float = field(default=0.0, repr=False)  # time.monotonic() of the first request
    parsed: Any = field(default=None, repr=False)  # what fetch(..., parse=fn) made of it
    parse_error: str | None = field(default=None, repr=False)
    revalidated: bool = field(default=False, repr=False)  # its request carried validators

    @classmethod
    def failed(
        cls, url: str, error: str, *, host: str, meta: Any, index: int, attempts: int = 0,
        kind: str = "internal",
    ) -> Result:  # fmt: skip
        """A failed Result for a URL that got no response to speak of."""
        return cls(
            url=url, ok=False, status=None, error=error, attempts=attempts, elapsed_s=0.0,
            bytes=0, host=host, meta=meta, index=index, error_kind=kind,
        )  # fmt: skip

    @property
    def text(self) -> str:
        """The body decoded with the charset the server declared (UTF-8 when it declared none)."""
        return self.content.decode(_charset(self.headers), errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.content)

    def to_record(self, *, headers: bool = False) -> dict[str, Any]:
        """The JSON record: contract keys first, in order; ``headers=True`` adds the final
        response's headers (None when there was none) just before ``meta``."""
        record = {name: getattr(self, name) for name in RECORD_FIELDS[:-1]}
        if headers:
            record[HEADERS_FIELD] = dict(self.headers) if self.status is not None else None
        record["meta"] = self.meta
        return record


def record_columns(*, headers: bool = False) -> tuple[str, ...]:
    """The record's keys, in order, as ``to_record(headers=...)`` gives them."""
    return (*RECORD_FIELDS[:-1], HEADERS_FIELD, "meta") if headers else RECORD_FIELDS


class RecordWriter(Protocol):
    """What writes records (JsonlWriter, csvout.CsvWriter): whole records only, from one
    thread; ``lock`` lets an interrupt flush between two of them."""

    lock: threading.RLock
    written: int

    def write(self, result: Result) -> None: ...
    def sync(self) -> None: ...


def _charset(headers: Mapping[str, str]) -> str:
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip('"') if _known_codec(value.strip('"')) else "utf-8"
    return "utf-8"


def _known_codec(name: str) -> bool:
    try:
        "".encode(name)
    except LookupError:
        return False
    return True


SYNC_EVERY = 2.0  # seconds between fsyncs: a crash loses at most the last moments


class LineWriter:
    """Writes whole lines to a stream, flushed as written, fsynced every SYNC_EVERY seconds.

    Records come from one thread (the one reading results). The lock is for the other
    thread that may need the file: an interrupt's deadline, which flushes and exits, must
    never do so halfway through a line.
    """

    def __init__(
        self,
        stream: IO[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        record_headers: bool = False,
    ) -> None:
        self._stream = stream
        self._clock = clock
        self._headers = record_headers
        self._synced_at = clock()
        self.lock = threading.RLock()
        self.written = 0

    def _put(self, text: str) -> None:
        with self.lock:
            self._stream.write(text)  # one call: a tailing reader sees whole records
            self._stream.flush()

    def _put_record(self, text: str) -> None:
        with self.lock:
            self._put(text)
            self.written += 1
            if self._clock() - self._synced_at >= SYNC_EVERY:
                self.sync()

    def sync(self) -> None:
        """Flush and, for a real file, fsync: what is written survives a power cut."""
        with self.lock:
            self._stream.flush()
            self._synced_at = self._clock()
            try:
                os.fsync(self._stream.fileno())
            except (OSError, ValueError, io.UnsupportedOperation):
                pass  # a pipe or terminal: nothing to sync


class JsonlWriter(LineWriter):
    """Writes one JSON line per result."""

    def write(self, result: Result) -> None:
        record = result.to_record(headers=self._headers)
        line = json.dumps(record, ensure_ascii=False, separators=(", ", ": "))
        self._put_record(line + "\n")


def record_field_names() -> tuple[str, ...]:
    """The dataclass's own field names, for checking they start with the contract's keys."""
    return tuple(f.name for f in fields(Result))
