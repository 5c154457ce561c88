"""Private host names for tests: make ``socket.getaddrinfo`` answer chosen names with
loopback addresses and leave every other lookup alone.

Used in the test process (through ``tests.realparts``) and, through ``sitecustomize`` in this
directory, in child processes whose ``URLFLEET_TEST_HOSTS`` holds a JSON object
``{name: address}``. Standard library only, so it costs a child next to nothing at startup.

Names match case-insensitively, with or without one trailing dot, as Unicode or as their IDNA
("xn--") form: requests and urllib3 encode ``bücher.test`` to ``xn--bcher-kva.test`` before they
resolve it, other code may not.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

ENV = "URLFLEET_TEST_HOSTS"

GetAddrInfo = Callable[..., list[Any]]


def normalize(name: str | bytes) -> str:
    """The lookup key of ``name``: IDNA (ACE) form, lower case, no trailing dot."""
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    if name.endswith("."):
        name = name[:-1]
    if not name.isascii():
        name = _to_ace(name)
    return name.lower()


def _to_ace(name: str) -> str:
    try:  # IDNA 2008 with UTS 46 mapping, as requests does; installed alongside requests
        import idna
    except ImportError:
        pass
    else:
        try:
            return str(idna.encode(name, uts46=True).decode("ascii"))
        except (idna.IDNAError, UnicodeError):
            pass
    try:
        return name.encode("idna").decode("ascii")  # the stdlib's IDNA 2003
    except UnicodeError:
        return name  # never matches a key, so the real resolver decides


def check_address(address: str) -> str:
    """``address`` if it is a loopback IP literal (v4 or v6), else ValueError."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"host mapping target must be an IP literal, got {address!r}") from None
    if not ip.is_loopback:
        raise ValueError(f"host mapping target must be a loopback address, got {address!r}")
    return str(ip)


def normalized(mapping: Mapping[str, str]) -> dict[str, str]:
    """``mapping`` with normalized names and checked addresses."""
    return {normalize(name): check_address(address) for name, address in mapping.items()}


def make_getaddrinfo(names: Mapping[str, str], original: GetAddrInfo) -> GetAddrInfo:
    """A ``getaddrinfo`` that resolves the (normalized) keys of ``names``, read at every call,
    to their addresses and hands everything else to ``original``."""

    def getaddrinfo(
        host: str | bytes | None,
        port: str | bytes | int | None,
        family: int = 0,
        type: int = 0,  # noqa: A002 - the socket module's own parameter name
        proto: int = 0,
        flags: int = 0,
    ) -> list[Any]:
        if isinstance(host, (str, bytes)):
            address = names.get(normalize(host))
            if address is not None:
                # The real resolver on the literal: family filtering, service names and
                # result shape stay exactly as without the mapping.
                return original(address, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        return original(host, port, family, type, proto, flags)

    getaddrinfo.urlfleet_test_hosts = names  # type: ignore[attr-defined]
    return getaddrinfo


def install_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, str] | None:
    """Patch ``socket.getaddrinfo`` from ``URLFLEET_TEST_HOSTS``; the mapping, or None if unset."""
    raw = environ.get(ENV)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"{ENV} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ValueError(f"{ENV} must be a JSON object of name: address strings, got {raw!r}")
    names = normalized(data)
    socket.getaddrinfo = make_getaddrinfo(names, socket.getaddrinfo)
    return names
