"""Host identity: which URLs are one host to the politeness rules.

requests sends ``bücher.test``, ``xn--bcher-kva.test``, ``BÜCHER.test`` and ``bücher.test.``
to the same server, so they must share one in-flight limit and one start gap. The key is the
name as it goes on the wire: lower-cased and IDNA-encoded (UTS #46, as requests encodes it),
one trailing dot removed, IP literals in their canonical form (``127.1`` and ``0x7f.0.0.1`` are
``127.0.0.1``; ``[0:0::1]`` is ``[::1]``), and the port only when it is not the scheme's default.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from functools import lru_cache
from urllib.parse import urlsplit

import idna

from urlfleet.urls import origin_of

DEFAULT_PORTS = {"http": 80, "https": 443}
# What inet_aton reads as an IPv4 address (decimal, octal or hex parts, 1 to 4 of them), as
# the system resolver does when requests hands it such a "name".
_IPV4_SPELLING = re.compile(r"^(?:0x[0-9a-f]*|\d+)(?:\.(?:0x[0-9a-f]*|\d+)){0,3}$")


def host_key(url: str) -> str:
    """The politeness key of a URL: its canonical host name, plus the port when not the default.

    >>> host_key("https://Example.COM.:443/a"), host_key("http://127.0.0.1:8001/")
    ('example.com', '127.0.0.1:8001')
    >>> host_key("http://BÜCHER.test/"), host_key("http://[0:0::1]:80/")
    ('xn--bcher-kva.test', '[::1]')
    """
    return _origin_key(origin_of(url) or url)


# A list's URLs share few origins: each origin's key is worked out once (urlsplit, IDNA).
@lru_cache(maxsize=4096)
def _origin_key(url: str) -> str:
    parts = urlsplit(url)
    host = canonical_host(parts.hostname or "")
    port = parts.port
    if port is None or port == DEFAULT_PORTS.get(parts.scheme.lower()):
        return host
    return f"{host}:{port}"


def key_of(host: str) -> str:
    """The key of a host as written in ``host_limits``: ``name``, ``name:port``, ``[v6]:port``,
    or a URL of it.

    >>> key_of("Bücher.test:8080"), key_of("[0::1]:81"), key_of("https://a.test:443/x")
    ('xn--bcher-kva.test:8080', '[::1]:81', 'a.test')
    """
    if "://" in host:
        return host_key(host)
    name, port = host, ""
    if host.startswith("["):
        name, _, rest = host.partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif host.count(":") == 1:
        name, _, port = host.partition(":")
    name = canonical_host(name)
    return f"{name}:{port}" if port else name


@lru_cache(maxsize=4096)  # the hosts seen last: a list of a million hosts keeps flat memory
def canonical_host(host: str) -> str:
    """A host name or IP literal as it goes on the wire; IPv6 literals keep their brackets."""
    host = host.strip("[]")
    if host.endswith("."):
        host = host[:-1]
    address = _ip_literal(host)
    if address is not None:
        return f"[{address}]" if address.version == 6 else str(address)
    if host.isascii():
        return host.lower()
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError:  # requests will refuse it too; keep it recognisable
        return host.lower()


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _IPV4_SPELLING.match(host.lower()):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None
