"""Which kept TLS session a new connection is offered: its own name's, at its own address."""

from __future__ import annotations

import ssl
from typing import Any

from urlfleet.fetching.resumption import ResumingContext, keep_session, resuming


class _Socket:
    """What keep and session_for read of a socket."""

    def __init__(self, name: str | None, address: tuple[str, int], context: Any = None,
                 session: Any = "a session", version: str = "TLSv1.3", ticket: bool = True
                 ) -> None:  # fmt: skip
        self.server_hostname, self._address, self.context = name, address, context
        self.session = None if session is None else _Session(session, ticket)
        self._version = version

    def getpeername(self) -> tuple[str, int]:
        return self._address

    def version(self) -> str:
        return self._version


class _Session:
    def __init__(self, label: str, ticket: bool) -> None:
        self.label, self.has_ticket = label, ticket


def _context() -> ResumingContext:
    return resuming(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))


def test_a_session_is_offered_to_its_name_at_its_address_alone() -> None:
    context = _context()
    assert context.keep(_Socket("a.test", ("127.0.0.1", 443), session="a"))  # type: ignore[arg-type]
    found = context.session_for("a.test", _Socket("a.test", ("127.0.0.1", 443)))  # type: ignore[arg-type]
    assert found is not None and found.label == "a"  # type: ignore[attr-defined]
    for name, address in (("b.test", ("127.0.0.1", 443)), ("a.test", ("127.0.0.1", 8443)),
                          ("a.test", ("127.0.0.2", 443)), (None, ("127.0.0.1", 443))):  # fmt: skip
        assert context.session_for(name, _Socket(name, address)) is None  # type: ignore[arg-type]


def test_the_latest_session_of_a_server_is_the_one_kept() -> None:
    context = _context()
    for label in ("first", "second"):
        context.keep(_Socket("a.test", ("127.0.0.1", 443), session=label))  # type: ignore[arg-type]
    found = context.session_for("a.test", _Socket("a.test", ("127.0.0.1", 443)))  # type: ignore[arg-type]
    assert found.label == "second"  # type: ignore[union-attr]


def test_a_session_that_cannot_be_resumed_is_not_kept() -> None:
    context = _context()
    unticketed = _Socket("a.test", ("127.0.0.1", 443), ticket=False)  # TLS 1.3, no ticket yet
    assert not context.keep(unticketed)  # type: ignore[arg-type]
    assert not context.keep(_Socket("a.test", ("127.0.0.1", 443), session=None))  # type: ignore[arg-type]
    tls12 = _Socket("a.test", ("127.0.0.1", 443), version="TLSv1.2", ticket=False)
    assert context.keep(tls12)  # type: ignore[arg-type]  # a session id resumes


def test_sockets_of_other_contexts_and_plain_sockets_are_left_alone() -> None:
    assert not keep_session(_Socket("a.test", ("127.0.0.1", 443), context=None))
    plain = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    assert not keep_session(_Socket("a.test", ("127.0.0.1", 443), context=plain))
    context = _context()
    assert keep_session(_Socket("a.test", ("127.0.0.1", 443), context=context))


def test_a_context_turned_resuming_keeps_its_settings() -> None:
    made = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    made.minimum_version = ssl.TLSVersion.TLSv1_2
    made.check_hostname = True
    context = resuming(made)
    assert context is made
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2 and context.check_hostname
