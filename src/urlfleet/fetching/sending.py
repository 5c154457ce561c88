"""Preparing and sending a request as a requests.Session does, less what it redoes each time.

``Session.prepare_request`` merges the session's headers into every request anew, checking
each of them again, and copies the whole cookie jar into every request; ``Session.send``
then looks up proxies, times the request and reads the environment. For urlfleet's own
sessions (made by ``adapter.new_session``: ``trust_env`` off, the run's one jar) the
session's headers never change, so they are merged and checked once, the jar is read
instead of copied, and nothing else differs: requests' own ``PreparedRequest`` methods
prepare the URL, body, cookies and auth, and requests' own adapter, hooks, cookie
extraction and redirect resolution run as ``Session.send`` would run them.

A caller's own sessions (``session_factory``) are sent through ``Session.send`` itself.
"""

from __future__ import annotations

from typing import Any

import requests
from requests import cookies, hooks, sessions, utils
from requests.models import PreparedRequest

from urlfleet.fetching.headers import Headers

# requests' helpers that carry no type annotations, typed as urlfleet uses them
_check_header: Any = utils.check_header_validity
_native: Any = utils.to_native_string
_merge_setting: Any = sessions.merge_setting
_merge_hooks: Any = sessions.merge_hooks
_merge_cookies: Any = cookies.merge_cookies
_dispatch_hook: Any = hooks.dispatch_hook
_extract_cookies: Any = cookies.extract_cookies_to_jar


class Preparer:
    """``session.prepare_request`` for sessions that all share ``session``'s settings.

    >>> prepared = Preparer(session).prepare(requests.Request("GET", url))
    """

    def __init__(self, session: requests.Session) -> None:
        if session.trust_env:
            raise ValueError("a Preparer is for sessions with trust_env off (no .netrc)")
        headers = Headers()
        for name, value in session.headers.items():
            _check_header((name, value))
            headers[_native(name)] = value
        self._headers = headers
        self._session = session

    def prepare(self, request: requests.Request, url: str | None = None) -> PreparedRequest:
        """``request`` merged with the session's settings; ``url``: ``request.url`` as
        ``PreparedRequest.prepare_url`` already made it (it is not made again)."""
        session = self._session
        prepared = PreparedRequest()
        prepared.prepare_method(request.method)
        if url is None:
            prepared.prepare_url(request.url, request.params)
        else:
            prepared.url = url
        headers = self._headers.copy()
        for name, value in request.headers.items():
            if value is None:  # as merge_setting: None leaves the session's header out
                headers.pop(name, None)
                continue
            _check_header((name, value))
            headers[_native(name)] = value
        prepared.headers = headers
        jar = session.cookies
        if has_cookies(jar) or request.cookies:
            # The jar is read, never changed: what resolve_redirects changes is its copy.
            prepared.prepare_cookies(jar if not request.cookies else _merged(jar, request))
        else:
            prepared._cookies = jar  # type: ignore[attr-defined]
        prepared.prepare_body(request.data, request.files, request.json)
        auth = _merge_setting(request.auth, session.auth)
        if auth is not None or "@" in (prepared.url or ""):  # else prepare_auth finds none
            prepared.prepare_auth(auth, prepared.url)
        prepared.prepare_hooks(_merge_hooks(request.hooks, session.hooks))
        return prepared


def has_cookies(jar: Any) -> bool:
    """Whether a cookie jar holds any cookie, without walking it (``len`` walks every one)."""
    store = getattr(jar, "_cookies", None)  # http.cookiejar's domain -> path -> name dict
    return bool(store) if isinstance(store, dict) else True


def _merged(jar: Any, request: requests.Request) -> Any:
    merged = _merge_cookies(cookies.RequestsCookieJar(), jar)
    return _merge_cookies(merged, request.cookies)


def send(session: requests.Session, request: PreparedRequest, **settings: Any) -> requests.Response:
    """``session.send(request, allow_redirects=False, **settings)`` for a session whose
    settings ``settings`` already carry (proxies, verify, cert, stream)."""
    response = session.get_adapter(request.url or "").send(request, **settings)
    response = _dispatch_hook("response", request.hooks, response, **settings)
    assert isinstance(response, requests.Response)
    for earlier in response.history:  # a hook's own requests (digest auth) set cookies too
        _keep_cookies(session, earlier.request, earlier)
    _keep_cookies(session, request, response)
    if response.is_redirect:
        found = session.resolve_redirects(response, request, yield_requests=True, **settings)
        response._next = next(found, None)  # type: ignore[attr-defined]
    return response


def _keep_cookies(session: requests.Session, request: Any, response: requests.Response) -> None:
    # Extracting walks the jar and parses the URL: only worth it when there is a cookie.
    if "Set-Cookie" in response.headers or "Set-Cookie2" in response.headers:
        _extract_cookies(session.cookies, request, response.raw)
