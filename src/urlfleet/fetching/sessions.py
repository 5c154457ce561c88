"""Each worker thread's Session, and a job's request sent on it through the gate.

A requests.Session is not thread-safe (cookies, settings), so each thread has its own, made
on first use; all of urlfleet's share one adapter (``adapter.shared_adapter``), and so one
pool of connections per host. A caller's own sessions (``session_factory``) are gated as far
as their adapters allow, and keep requests' own look-ups.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from urlfleet.config import FetchConfig
from urlfleet.fetching import sending
from urlfleet.fetching.adapter import install_gate, is_gated, new_session, shared_adapter
from urlfleet.fetching.body import drain_redirect
from urlfleet.fetching.cookies import SharedCookieJar
from urlfleet.fetching.environment import Environment
from urlfleet.fetching.gate import Gate, check, gate, writing, wrote_at
from urlfleet.fetching.shaping import Shaper
from urlfleet.schedule.job import Job

SessionFactory = Callable[[], requests.Session]


class Sessions:
    """Each worker thread's Session; ``close()`` closes every one any thread opened."""

    def __init__(
        self,
        config: FetchConfig,
        shaper: Shaper,
        cookies: SharedCookieJar,
        session_factory: SessionFactory | None = None,
    ) -> None:
        self.config = config
        self.cookies = cookies
        self._shaper = shaper
        self._session_factory = session_factory or self._default_session
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self._adapter = shared_adapter(config)
        self._own_sessions = session_factory is None
        self._preparer_made: sending.Preparer | None = None
        self._environment = Environment(config)

    def close(self) -> None:
        """Close every Session any thread opened (and so their pooled connections)."""
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()  # the shared adapter too: closing it twice is harmless
        self._local = threading.local()

    def session(self) -> requests.Session:
        """This thread's Session, created on first use."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._session_factory()
            if not self._own_sessions:
                install_gate(session)
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _default_session(self) -> requests.Session:
        return new_session(self.config, self._adapter, self.cookies)

    def _preparer(self, session: requests.Session) -> sending.Preparer:
        # Every Session of ours has the same settings: the first one made serves as the model.
        preparer = self._preparer_made
        if preparer is None:
            with self._sessions_lock:
                preparer = self._preparer_made = self._preparer_made or sending.Preparer(session)
        return preparer

    def send(self, job: Job, hold: Gate) -> requests.Response:
        """``job``'s next request, written inside ``hold``; its response, streamed."""
        session = self.session()
        if self._own_sessions:
            env = self._environment.settings(job.target)
            request = job.request or self._preparer(session).prepare(
                self._shaper.request(job, auth=env.auth),
                job.prepared_url if job.target == job.url else None,
            )
            settings: dict[str, Any] = {"proxies": env.proxies, "verify": env.verify}
            settings.update(stream=True, cert=None)
            gated = env.gated
        else:  # a caller's own sessions: requests' own lookups, as the caller set them up
            request = job.request or session.prepare_request(self._shaper.request(job))
            settings = dict(session.merge_environment_settings(request.url, {}, True, None, None))
            settings["stream"] = True
            gated = is_gated(session, request.url or "", settings.get("proxies"))
        if drain_redirect not in request.hooks["response"]:
            request.register_hook("response", drain_redirect)
        limit = min(self.config.timeout, self.config.max_time or math.inf)
        timeout = (limit, limit)
        if not gated:
            # Connections this process cannot gate (SOCKS, a custom adapter): the same rule,
            # kept just before the send instead of at the write.
            with writing(hold):
                pass
            return self._timed(job, session, request, timeout=timeout, **settings)
        check(hold)  # not due: back to the frontier before a pooled connection is taken
        with gate(hold):
            return self._timed(job, session, request, timeout=timeout, **settings)

    def _timed(
        self, job: Job, session: requests.Session, request: requests.PreparedRequest,
        **settings: Any,
    ) -> requests.Response:  # fmt: skip
        # A gated request's clock starts at its write (connection set up, the host's gap
        # passed); any other's just before the send. Real time, whatever the run's clock.
        before = time.monotonic()
        if self._own_sessions:
            response = sending.send(session, request, **settings)
        else:
            response = session.send(request, allow_redirects=False, **settings)
        job.ttfb_s = round(time.monotonic() - max(before, wrote_at() or before), 6)
        return response
