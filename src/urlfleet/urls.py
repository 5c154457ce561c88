"""URLs as every stage sees them: whether one can be fetched, how records show it, its digest.

Pure helpers with no state: the reader checks each line with ``checked_url``, the fetcher
prepares it from the same answer, and records and messages show it through ``redact_url``.
"""

from __future__ import annotations

import functools
import hashlib
import re
from urllib.parse import urlsplit, urlunsplit

# RFC 9110 (section 4.1) asks clients to support URIs of at least 8,000 octets; sites do use
# long query strings. Far beyond that a "URL" is a pasted blob, not an address.
MAX_URL_LENGTH = 65_536
_UNSENDABLE = re.compile(r"[\s\x00-\x1f\x7f]")  # what str.isspace calls space, and controls
_ORIGIN = re.compile(r"[^:/?#]+://[^/?#]*")  # scheme://netloc, where urlsplit ends it
# An origin whose scheme, host and port pass every check of _origin_problem, seen at once:
# http or https, a host of letters, digits, dots and dashes, and a port (if any) from 1.
_PLAIN_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(?::([1-9][0-9]{0,4}))?(?=[/?#]|\Z)")


def origin_of(url: str) -> str | None:
    """``scheme://netloc`` of ``url`` as written (what urlsplit reads the scheme, host and
    port from), or None for a URL without ``://``.

    >>> origin_of("https://u@Example.com:8/a?b")
    'https://u@Example.com:8'
    """
    origin = _ORIGIN.match(url)
    return origin.group(0) if origin else None


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be fetched, or None when it can.

    >>> url_problem("ftp://example.com/")
    "unsupported scheme 'ftp' (only http and https)"
    """
    return checked_url(url)[0]


# A URL as requests prepares it (ASCII, quoted, no spaces or controls) whose host holds no
# brackets, which urlsplit would check: what PreparedRequest.path_url splits it into, at once.
_PLAIN_URL = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#\[\]\x00-\x20\x7f]*(?=[/?#]|\Z)"
    r"([^?#\x00-\x20\x7f]*)(?:\?([^#\x00-\x20\x7f]*))?(?:#[^\x00-\x20\x7f]*)?"
)


def request_target(url: str) -> str | None:
    """``PreparedRequest.path_url`` of a plain ``url`` (path, "?" and query when there is
    one); None for any other URL, or a path starting with "//" (requests may re-write it)."""
    plain = _PLAIN_URL.fullmatch(url) if url.isascii() else None
    if plain is None:
        return None
    path, query = plain.group(1) or "/", plain.group(2)
    if path.startswith("//"):
        return None
    return f"{path}?{query}" if query else path


# A URL read from a list is checked by the reader (to name its line) and again when its job
# is made, moments later: the second check is a lookup.
@functools.lru_cache(maxsize=1024)
def checked_url(url: str) -> tuple[str | None, str | None]:
    """``(None, url as requests sends it)`` for a URL that can be fetched, else
    ``(why not, None)``."""
    if len(url) > MAX_URL_LENGTH:
        return f"URL longer than {MAX_URL_LENGTH} characters ({len(url)})", None
    if _UNSENDABLE.search(url):
        return "URL contains spaces or control characters", None
    plain = _PLAIN_ORIGIN.match(url)
    if plain is None or int(plain.group(1) or 1) > 65535:
        why = _origin_problem(url)
        if why is not None:
            return why, None
    # The final word is requests' own: whatever it would refuse to send is malformed here.
    # Imported here, where a URL is checked: `import urlfleet` and --help need no requests.
    import requests

    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(url, None)
    except (requests.RequestException, ValueError, UnicodeError) as exc:
        return f"rejected by requests ({exc})", None
    return None, prepared.url


def _origin_problem(url: str) -> str | None:
    """What is wrong with ``url``'s scheme, host or port, if anything."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"malformed URL ({exc})"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return f"unsupported scheme {scheme!r} (only http and https)" if scheme else "no scheme"
    if not parts.hostname:
        return "no host"
    if port == 0:
        return "port 0 is not a valid port"
    return None


def redact_url(url: str) -> str:
    """The URL with any password in it replaced by ``***``, fit for records and messages.

    >>> redact_url("http://user:secret@example.com/a")
    'http://user:***@example.com/a'
    """
    if "@" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None and parts.username is None:
        return url
    user = parts.username or ""
    hidden = f"{user}:***" if parts.password is not None else user
    netloc = hidden + "@" + parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=netloc))


def scrub(text: str, url: str) -> str:
    """``text`` with the password of ``url`` (if any) masked, e.g. in an error message."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return text
    return text.replace(f":{password}@", ":***@") if password else text


def url_digest(url: str) -> int:
    """A 64-bit digest of a URL string, for remembering it in 8 bytes."""
    return int.from_bytes(hashlib.blake2b(url.encode(), digest_size=8).digest(), "big")
