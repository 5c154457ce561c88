"""TLS sessions kept per server, so that a host's next connection resumes its last one.

A full handshake costs the client a key exchange and the check of the server's certificate
chain; a resumed one (a ticket the server gave, or a TLS 1.2 session id) skips the chain and,
before TLS 1.3, the key exchange. urllib3 starts every connection afresh, so a host fetched
with ``--per-host`` above 1, or whose idle connections the server closed, pays in full each
time. The contexts urlfleet makes (``resuming``) keep, for each server name and address, the
latest session a connection was given, and offer it to the next connection to that same name
at that same address; never to another name, nor the same name elsewhere. A server that
declines it answers with a full handshake, as without it.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

SESSIONS_KEPT = 4096  # servers whose latest session is kept, as many as pools (POOLED_HOSTS)

_Key = tuple[str | bytes | None, Any]


class ResumingContext(ssl.SSLContext):
    """An SSLContext whose client sockets offer the session last kept for their server."""

    _sessions: dict[_Key, ssl.SSLSession]

    def wrap_socket(
        self, sock: socket.socket, server_side: bool = False,
        do_handshake_on_connect: bool = True, suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None, session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:  # fmt: skip
        if session is None and not server_side:
            session = self.session_for(server_hostname, sock)
        return super().wrap_socket(
            sock, server_side, do_handshake_on_connect, suppress_ragged_eofs, server_hostname,
            session,
        )  # fmt: skip

    def session_for(
        self, server_hostname: str | bytes | None, sock: socket.socket
    ) -> ssl.SSLSession | None:
        """The session kept for ``server_hostname`` at the address ``sock`` is connected to."""
        try:
            return self._sessions.get(_key(server_hostname, sock))
        except OSError:
            return None  # not connected: wrapping it fails as it would have

    def keep(self, sock: ssl.SSLSocket) -> bool:
        """Keep ``sock``'s session for its server's next connection, if it can be resumed
        (a TLS 1.3 one only once its ticket has come); whether it was."""
        try:
            session = sock.session
            if session is None or not (session.has_ticket or sock.version() != "TLSv1.3"):
                return False
            key = _key(sock.server_hostname, sock)
        except (OSError, ValueError):
            return False  # closed meanwhile
        if len(self._sessions) >= SESSIONS_KEPT and key not in self._sessions:
            self._sessions.clear()
        self._sessions[key] = session
        return True


def resuming(context: ssl.SSLContext) -> ResumingContext:
    """``context`` (as urllib3 made it) turned into a ResumingContext, its settings kept."""
    context.__class__ = ResumingContext
    assert isinstance(context, ResumingContext)
    context._sessions = {}
    return context


def keep_session(sock: Any) -> bool:
    """Keep the session of ``sock`` if it is a socket of a ResumingContext; whether it was."""
    context = getattr(sock, "context", None)
    return isinstance(context, ResumingContext) and context.keep(sock)


def _key(server_hostname: str | bytes | None, sock: socket.socket) -> _Key:
    return server_hostname, sock.getpeername()[:2]
