"""What all hosts of one server share: records, counters, caches."""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import os
import threading
import time
import zlib
from typing import Any, Protocol

from .spec import RequestRecord


class _Abortable(Protocol):
    def abort(self) -> None: ...


class _State:
    """What all hosts of one server share; written by the loop thread, read by any thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: list[RequestRecord] = []
        self.fault_counts: dict[str, int] = {}
        self.requests = 0
        self.connections = 0
        self.idle_closed = 0  # connections closed for idle_timeout
        self.tls_resumed = 0  # TLS connections whose client resumed an earlier session
        self.serials = itertools.count(1)  # connection numbers, taken as they are accepted
        self.host_connections: dict[str, int] = {}
        self.open: set[_Abortable] = set()  # the open connections
        self.gzip_cache: dict[int, asyncio.Future[bytes]] = {}
        self.stopping = threading.Event()  # lets a long gzip compression end with the server
        self._date_second = -1
        self._date = ""

    def add_locked(self, record: RequestRecord) -> None:
        """Append ``record``; the caller holds ``lock``."""
        self.records.append(record)
        self.requests += 1

    def snapshot(self, contains: str | None) -> list[RequestRecord]:
        with self.lock:
            records = list(self.records)
        if contains is None:
            return records
        return [r for r in records if contains in r.path]

    def clear(self) -> None:
        with self.lock:
            self.records.clear()
            self.fault_counts.clear()

    def bump(self, key: str) -> int:
        """Count one more request for ``key``; returns how many came before it."""
        with self.lock:
            seen = self.fault_counts.get(key, 0)
            self.fault_counts[key] = seen + 1
        return seen

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "cpu_s": time.process_time(),
                "requests": self.requests,
                "connections": self.connections,
                "open_connections": len(self.open),
                "idle_closed": self.idle_closed,
                "tls_resumed": self.tls_resumed,
                "host_connections": dict(self.host_connections),
                "records": len(self.records),
                "pid": os.getpid(),
            }

    def http_date(self) -> str:
        # Formatting a date costs more than the rest of a response head; once a second is enough.
        now = int(time.time())
        if now != self._date_second:
            self._date = email.utils.formatdate(now, usegmt=True)
            self._date_second = now
        return self._date

    async def gzip_zeros(self, size: int) -> bytes:
        """Gzip of ``size`` zero bytes, compressed once per size in a worker thread."""
        future = self.gzip_cache.get(size)
        if future is None:
            future = asyncio.ensure_future(asyncio.to_thread(_gzip_zeros, size, self.stopping))
            # Mark a failure as seen even if every waiter has gone (no "never retrieved" log).
            future.add_done_callback(lambda done: done.cancelled() or done.exception())
            self.gzip_cache[size] = future
        # shield: a client hanging up must not cancel the compression other requests await.
        return await asyncio.shield(future)


def _gzip_zeros(size: int, stopping: threading.Event) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31 = gzip container
    chunk = bytes(min(size, 1 << 20))
    parts: list[bytes] = []
    remaining = size
    while remaining:
        if stopping.is_set():  # a 4 GiB bomb takes ~15 s; do not hold up stop() for it
            raise RuntimeError("server stopping")
        take = min(remaining, len(chunk))
        parts.append(compressor.compress(memoryview(chunk)[:take]))
        remaining -= take
    parts.append(compressor.flush())
    return b"".join(parts)
