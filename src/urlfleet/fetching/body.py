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
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import requests
from urllib3.exceptions import HTTPError, ReadTimeoutError

from urlfleet.config import FetchConfig
from urlfleet.errors import NotAccepted, SaveError
from urlfleet.fetching.mediatypes import accepts, shown

# Bodies are saved only with --save-dir: the module that writes them loads where it is used.
if TYPE_CHECKING:
    from urlfleet.record.saving import SavedBody

T = TypeVar("T")
CHUNK_SIZE = 64 * 1024  # requests' default of 10 KiB costs CPU on large bodies
# A redirect's body is read only to keep its connection for the next request; a longer one
# costs the connection, never memory: requests would read and decode any size, bombs too.
REDIRECT_BODY_MAX = 64 * 1024
NOT_SAVED: AbstractContextManager[None] = nullcontext()  # a body read, not saved


class Body(NamedTuple):
    """What was read of a response body."""

    content: bytes = b""
    size: int = 0
    truncated: bool = False
    saved_to: str | None = None
    sha256: str | None = None  # of ``size`` bytes as decoded; None when no body was read


def read_body(
    response: requests.Response,
    limit: int,
    *,
    keep: bool,
    truncates: bool,
    saving: AbstractContextManager[SavedBody | None],
) -> Body:
    """Read at most ``limit`` bytes of ``response``'s body, kept if ``keep``, saved to what
    ``saving`` gives (if anything); a body past the limit is ``truncated`` if ``truncates``."""
    if saving is NOT_SAVED:  # nothing to unwind
        return _read(response, limit, keep, truncates, None)
    with ExitStack() as stack:
        return _read(response, limit, keep, truncates, _saving(stack.enter_context, saving))


def _read(
    response: requests.Response, limit: int, keep: bool, truncates: bool, saved: SavedBody | None
) -> Body:
    body, size, digest = bytearray(), 0, hashlib.sha256()
    # iter_content decodes gzip, deflate, br and zstd, so the cap applies to what a bomb
    # inflates to.
    for chunk in _timed_out_as_read_timeout(response.iter_content(CHUNK_SIZE)):
        if size + len(chunk) > limit:
            kept = chunk[: limit - size]
            digest.update(kept)
            if keep:
                body += kept
            # Never saved (never committed). What lies past the limit is ignored.
            sha256 = digest.hexdigest()
            return Body(bytes(body), limit, truncated=truncates, sha256=sha256)
        size += len(chunk)
        digest.update(chunk)  # as it streams: a body only saved is hashed too
        if keep:
            body += chunk
        if saved is not None:
            _saving(saved.write, chunk)
    path = _saving(saved.commit) if saved is not None else None
    saved_to = None if path is None else str(path)
    return Body(bytes(body), size, saved_to=saved_to, sha256=digest.hexdigest())


def check_type(response: requests.Response, config: FetchConfig) -> None:
    """Raise NotAccepted for a response whose type --accept-type refuses."""
    # --accept-type: stop after the headers; the body is never read, nor saved.
    patterns = config.accept_type
    if not patterns:
        return
    content_type = response.headers.get("Content-Type")
    if not accepts(patterns, content_type):
        raise NotAccepted(shown(content_type))


def saved_body(
    response: requests.Response, url: str, config: FetchConfig
) -> AbstractContextManager[SavedBody | None]:
    """Where --save-dir keeps the body of ``url``'s response, if it keeps it."""
    if config.save_dir is None or not 200 <= response.status_code < 300:
        return NOT_SAVED
    if response.request.method == "HEAD":  # no body: nothing to save
        return NOT_SAVED
    from urlfleet.record.saving import SavedBody, body_path

    content_type = response.headers.get("Content-Type")
    return SavedBody(body_path(config.save_dir, url, content_type=content_type))


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
