"""One cookie jar per run, shared by every worker thread, and the cookies.txt it may persist to.

Each thread has its own requests.Session, and each Session would keep its own jar: a cookie a
host set on its first response would then reach only the thread that got it. So every Session
of a run is given the same jar. ``http.cookiejar.CookieJar`` locks its own changes; requests
also *iterates* a Session's jar (to merge it into each request), which the standard library
does not lock, so ``SharedCookieJar`` iterates over a snapshot taken under that lock.

Which cookie goes where is http.cookiejar's rule (Domain, Path, expiry, Secure): a cookie
never reaches another host unless its Domain allows it.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from http.cookiejar import Cookie, LoadError, MozillaCookieJar
from pathlib import Path

from requests.cookies import RequestsCookieJar

from urlfleet.errors import InputError

_SHAPE = "it starts '# Netscape HTTP Cookie File', then 7 tab-separated fields a line"


class SharedCookieJar(RequestsCookieJar):
    """A RequestsCookieJar that several threads may read and change at once.

    >>> session.cookies = jar  # the same jar for every Session of the run
    """

    def __iter__(self) -> Iterator[Cookie]:  # type: ignore[override]  # a CookieJar yields Cookies
        return iter(self.snapshot())

    def snapshot(self) -> list[Cookie]:
        """The cookies held now."""
        # CookieJar.__iter__ walks its nested dicts unlocked: a thread storing a cookie
        # meanwhile would end the walk with "dictionary changed size during iteration".
        with self._cookies_lock:  # type: ignore[attr-defined]  # CookieJar's RLock
            return list(super().__iter__())


def new_jar(cookies: Mapping[str, str] = {}) -> SharedCookieJar:  # noqa: B006 - never changed
    """A jar holding ``cookies`` (sent to every host, as ``--cookie`` cookies are)."""
    jar = SharedCookieJar()
    for name, value in cookies.items():
        jar.set(name, value)  # no domain: sent to every URL
    return jar


def load_jar(path: Path | None, cookies: Mapping[str, str] = {}) -> SharedCookieJar:  # noqa: B006
    """A jar with ``cookies`` and those of the cookies.txt at ``path`` (if it exists yet).

    Session cookies (no expiry; curl writes 0) are read too, expired ones are not. A file
    that cannot be read or is not a Netscape cookies.txt is an InputError naming it.
    """
    jar = new_jar(cookies)
    if path is None or not path.exists():
        return jar
    stored = MozillaCookieJar(str(path))
    try:
        with warnings.catch_warnings():  # a bad line also warns "http.cookiejar bug!"
            warnings.simplefilter("ignore")
            stored.load(ignore_discard=True, ignore_expires=True)
    except LoadError as exc:  # its message quotes the bad line: a cookie value, not shown
        raise InputError(f"--cookie-jar {path}: not a Netscape cookies.txt ({_SHAPE})") from exc
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(f"--cookie-jar {path}: cannot read it ({why})") from exc
    now = int(time.time())
    for cookie in stored:
        if cookie.expires == 0:  # curl writes a session cookie's expiry as 0
            cookie.expires, cookie.discard = None, True
        if not cookie.is_expired(now):
            jar.set_cookie(cookie)
    return jar


def save_jar(jar: Iterable[Cookie], path: Path) -> None:
    """Write the jar's cookies to ``path`` as a Netscape cookies.txt, session cookies too.

    Cookies without a domain (those given for every URL) are not a host's and are left out.
    """
    stored = MozillaCookieJar(str(path))
    for cookie in jar:
        if cookie.domain:
            stored.set_cookie(cookie)
    try:
        stored.save(ignore_discard=True)
    except OSError as exc:
        raise InputError(f"--cookie-jar {path}: cannot write it ({exc.strerror or exc})") from exc
