"""Response bodies: read capped (decoded), hashed as they stream, and saved with --save-dir.

Every body is read through ``iter_content``, which decodes gzip, deflate, br and zstd, so a
cap holds on what a bomb inflates to. A redirect's body is read raw and capped before
requests can read it whole (``drain_redirect``).
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, nullcontext
from typing import Any, NamedTuple, TypeVar

import requests
from urllib3.exceptions import HTTPError, ReadTimeoutError

from urlfleet.config import FetchConfig
from urlfleet.errors import NotAccepted, SaveError
from urlfleet.fetching.mediatypes import accepts, shown
from urlfleet.politeness import ROBOTS_MAX_BYTES
from urlfleet.read.sitemaps import MAX_BYTES as SITEMAP_MAX_BYTES
from urlfleet.record.saving import SavedBody, body_path
from urlfleet.schedule.job import Job

T = TypeVar("T")
CHUNK_SIZE = 64 * 1024  # requests' default of 10 KiB costs CPU on large bodies
# A redirect's body is read only to keep its connection for the next request; a longer one
# costs the connection, never memory: requests would read and decode any size, bombs too.
REDIRECT_BODY_MAX = 64 * 1024


class Body(NamedTuple):
    """What was read of a response body."""

    content: bytes = b""
    size: int = 0
    truncated: bool = False
    saved_to: str | None = None
    sha256: str | None = None  # of ``size`` bytes as decoded; None when no body was read


def read_body(response: requests.Response, job: Job, config: FetchConfig) -> Body:
    """Read ``response``'s body for ``job``, capped, kept and saved as the job needs."""
    robots, sitemap = job.robots_for is not None, job.sitemap is not None
    limit = ROBOTS_MAX_BYTES if robots else config.max_bytes
    if sitemap:
        limit = sitemap_limit(config)
    keep = robots or sitemap or config.keep_content or config.retry_if is not None
    body, size, digest = bytearray(), 0, hashlib.sha256()
    with ExitStack() as stack:
        saving = nullcontext() if robots or sitemap else _saved_body(response, job, config)
        saved = _saving(stack.enter_context, saving)
        # iter_content decodes gzip, deflate, br and zstd, so the cap applies to what a bomb
        # inflates to.
        for chunk in _timed_out_as_read_timeout(response.iter_content(CHUNK_SIZE)):
            if size + len(chunk) > limit:
                kept = chunk[: limit - size]
                digest.update(kept)
                if keep:
                    body += kept
                # Never saved. RFC 9309: what lies past the limit of a robots.txt may be
                # ignored.
                sha256 = digest.hexdigest()
                return Body(bytes(body), limit, truncated=not robots, sha256=sha256)
            size += len(chunk)
            digest.update(chunk)  # as it streams: a body only saved is hashed too
            if keep:
                body += chunk
            if saved is not None:
                _saving(saved.write, chunk)
        path = _saving(saved.commit) if saved is not None else None
    saved_to = None if path is None else str(path)
    return Body(bytes(body), size, saved_to=saved_to, sha256=digest.hexdigest())


def check_type(response: requests.Response, job: Job, config: FetchConfig) -> None:
    """Raise NotAccepted for a response whose type --accept-type refuses."""
    # --accept-type: stop after the headers; the body is never read, nor saved.
    patterns = config.accept_type
    if not patterns or job.robots_for is not None or job.sitemap is not None:
        return
    content_type = response.headers.get("Content-Type")
    if not accepts(patterns, content_type):
        raise NotAccepted(shown(content_type))


def sitemap_limit(config: FetchConfig) -> int:
    """The most of a sitemap that is read: the protocol's limit, or --max-bytes if lower."""
    return min(SITEMAP_MAX_BYTES, config.max_bytes)


def _saved_body(
    response: requests.Response, job: Job, config: FetchConfig
) -> AbstractContextManager[SavedBody | None]:
    if config.save_dir is None or not 200 <= response.status_code < 300:
        return nullcontext()
    if response.request.method == "HEAD":  # no body: nothing to save
        return nullcontext()
    content_type = response.headers.get("Content-Type")
    return SavedBody(body_path(config.save_dir, job.url, content_type=content_type))


def _saving(action: Callable[..., T], *args: Any) -> T:
    # A disk that cannot take the bodies ends the run (exit 2), not just one URL.
    try:
        return action(*args)
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        raise SaveError(f"cannot save bodies ({exc.strerror or exc}{where})") from exc


def socket_of(response: requests.Response) -> socket.socket | None:
    """The socket ``response``'s body comes on (a proxy's, maybe), if it has one."""
    connection = getattr(response.raw, "connection", None)
    return getattr(connection, "sock", None)


def drain_redirect(response: requests.Response, **_: Any) -> requests.Response:
    """Read a redirect's body before requests does, raw and capped (a response hook).

    requests reads every 3xx body whole, decoded, to release its connection, even when the
    redirect is not followed: a 302 whose gzip body inflates to gigabytes would fill memory.
    Here it reads at most REDIRECT_BODY_MAX raw bytes; past that the connection is dropped.
    """
    if not response.is_redirect or getattr(response, "_content_consumed", False):
        return response
    raw, left = response.raw, REDIRECT_BODY_MAX
    try:
        while left > 0 and (chunk := raw.read(min(left, CHUNK_SIZE), decode_content=False)):
            left -= len(chunk)
        if left <= 0:
            raw.close()  # more to come: not worth reading, nor the connection worth keeping
    except (OSError, ValueError, requests.RequestException, HTTPError):
        raw.close()
    response._content = b""
    setattr(response, "_content_consumed", True)  # noqa: B010 - no typed way to say so
    return response


def _timed_out_as_read_timeout(chunks: Iterator[bytes]) -> Iterator[bytes]:
    # requests reports a read timeout in the body as a ConnectionError; call it what it is.
    try:
        yield from chunks
    except requests.ConnectionError as exc:
        if exc.args and isinstance(exc.args[0], ReadTimeoutError):
            raise requests.ReadTimeout(*exc.args) from exc
        raise
