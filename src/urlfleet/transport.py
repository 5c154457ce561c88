"""Sessions whose connections hold each request until its host's start gap has passed.

The gap between two requests to a host is kept from the moment each request is actually
written to its connection: after any connection setup (TCP, TLS, a proxy's CONNECT), right
before the request line goes out. That holds for direct requests, for requests through an
HTTP proxy or a CONNECT tunnel, and for a caller's own Sessions (``install_gate``).

Keeping it from any earlier moment (say, when a thread picked the URL) lets a
request that needed a new connection reach the server late and the next one early, so a
server could see two requests closer together than ``--delay``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies, get_netrc_auth, select_proxy
from urllib3 import PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from urlfleet.config import FetchConfig

# Hosts whose idle keep-alive connections are kept; with requests' default of 10, a list that
# cycles over more hosts opens a new connection for almost every request.
POOLED_HOSTS = 256

_waiting = threading.local()  # this thread's gate for the request it is about to send


Hold = Callable[[], AbstractContextManager[None]]


@contextmanager
def gate(hold: Hold) -> Iterator[None]:
    """Write this thread's next request (once) inside the context manager ``hold()`` gives.

    >>> with gate(lease.hold): session.send(request)
    """
    _waiting.hold = hold
    try:
        yield
    finally:
        _waiting.hold = None


@contextmanager
def _held(connection: HTTPConnection) -> Iterator[None]:
    hold: Hold | None = getattr(_waiting, "hold", None)
    if hold is None:
        yield
        return
    _waiting.hold = None
    if connection.sock is None:  # connect first (TCP, TLS, CONNECT): setup must not eat the gap
        connection.connect()
    with hold():
        # The gap may have kept a pooled connection idle a little longer: if the server has
        # closed it meanwhile, open a fresh one rather than fail on it.
        if not connection.is_connected:
            connection.close()
            connection.connect()
        yield


class _GatedHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        with _held(self):
            super().request(*args, **kwargs)


class _GatedHTTPSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        with _held(self):
            super().request(*args, **kwargs)


class _GatedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GatedHTTPConnection


class _GatedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GatedHTTPSConnection


_PLAIN_POOLS = {"http": HTTPConnectionPool, "https": HTTPSConnectionPool}
_GATED_POOLS = {"http": _GatedHTTPPool, "https": _GatedHTTPSPool}


def _gate_manager(manager: PoolManager) -> bool:
    """Gate a pool manager's connections (direct, or through an HTTP proxy, CONNECT included),
    unless it builds connections of its own (SOCKS, a caller's custom pools)."""
    if manager.pool_classes_by_scheme == _GATED_POOLS:
        return True
    if manager.pool_classes_by_scheme != _PLAIN_POOLS:
        return False
    manager.clear()  # pools made before were of the plain kind
    manager.pool_classes_by_scheme = dict(_GATED_POOLS)
    return True


class GatedAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections pass this thread's gate before each request.

    ``proxy_pool_maxsize``: plain-HTTP requests through a proxy share one pool of
    connections to it, whatever host they are for, so it is sized for every thread.
    """

    def __init__(self, *args: Any, proxy_pool_maxsize: int = 10, **kwargs: Any) -> None:
        self.proxy_pool_maxsize = proxy_pool_maxsize
        super().__init__(*args, **kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _gate_manager(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        fresh = proxy not in self.proxy_manager
        manager: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if fresh and _gate_manager(manager):
            manager.connection_pool_kw["maxsize"] = self.proxy_pool_maxsize
        return manager


def install_gate(session: requests.Session) -> None:
    """Gate the connections of a caller's Session, as far as its adapters allow.

    Plain HTTPAdapters (and subclasses that keep urllib3's own pools) get gated pools, for
    direct and proxied requests alike; ``is_gated`` tells which requests are covered.
    """
    for adapter in session.adapters.values():
        if isinstance(adapter, GatedAdapter) or not isinstance(adapter, HTTPAdapter):
            continue
        if getattr(adapter, "_urlfleet_gated", False):
            continue
        if not _gate_manager(adapter.poolmanager):
            continue
        for manager in adapter.proxy_manager.values():
            _gate_manager(manager)
        plain_proxy_manager_for = adapter.proxy_manager_for

        def proxy_manager_for(proxy: str, _plain: Any = plain_proxy_manager_for,
                              **proxy_kwargs: Any) -> PoolManager:  # fmt: skip
            manager: PoolManager = _plain(proxy, **proxy_kwargs)
            _gate_manager(manager)
            return manager

        adapter.proxy_manager_for = proxy_manager_for  # type: ignore[method-assign]
        adapter._urlfleet_gated = True  # type: ignore[attr-defined]


def is_gated(session: requests.Session, url: str, proxies: Mapping[str, str] | None) -> bool:
    """Whether a request to ``url`` with ``proxies`` goes through gated connections."""
    adapter = session.get_adapter(url)
    if not isinstance(adapter, GatedAdapter) and not getattr(adapter, "_urlfleet_gated", False):
        return False
    assert isinstance(adapter, HTTPAdapter)
    proxy = select_proxy(url, dict(proxies or {}))
    if proxy is None:
        return bool(adapter.poolmanager.pool_classes_by_scheme == _GATED_POOLS)
    return not proxy.lower().startswith("socks")


def shared_adapter(config: FetchConfig) -> GatedAdapter:
    """The connection pools every thread's Session shares: one pool per host.

    A requests.Session is not thread-safe (cookies, settings), so each thread has its own;
    urllib3's pools are, so the connections are shared. A host then sees at most as many
    connections as it has requests in flight (--per-host), not one per thread, and a
    thread never waits on a handshake another thread's connection could have spared it.
    The frontier never has more than per_host requests out to a host, so a pool of that
    size never overflows ("Connection pool is full").
    """
    largest = max([config.per_host, *(limits.per_host for limits in config.host_limits.values())])
    threads = config.jobs if config.jobs > 0 else os.cpu_count() or 1
    # Retries are tenacity's job, never urllib3's as well.
    return GatedAdapter(
        pool_connections=POOLED_HOSTS,
        pool_maxsize=largest,
        max_retries=0,
        proxy_pool_maxsize=max(largest, threads),
    )


def new_session(config: FetchConfig, adapter: HTTPAdapter) -> requests.Session:
    """A Session for one worker thread on the shared ``adapter``, with the config's
    headers, cookies, auth, proxies and TLS verification."""
    session = requests.Session()
    session.trust_env = False  # the Environment looks it up once per host instead
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = config.user_agent
    session.headers.update(config.headers)
    session.cookies.update(dict(config.cookies))
    session.proxies.update(config.proxies)
    session.auth = config.auth
    session.verify = config.verify
    return session


@dataclass(frozen=True, slots=True)
class Settings:
    """What the environment says about requests to one host."""

    proxies: dict[str, str]
    verify: bool | str
    auth: tuple[str, str] | None
    gated: bool = True  # its connections pass the gate at the write (all but SOCKS proxies)


class Environment:
    """Proxies (HTTP_PROXY, NO_PROXY...), CA bundle and .netrc credentials, per host.

    requests looks these up again for every request (``trust_env``), scanning os.environ and
    reading ~/.netrc: about a fifth of its CPU per request. The answers do not change during
    a run, so they are looked up once per scheme, host and port and kept.
    """

    def __init__(self, config: FetchConfig) -> None:
        self._config = config
        self._known: dict[tuple[str, str, int | None], Settings] = {}

    def settings(self, url: str) -> Settings:
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "", parts.port)
        known = self._known.get(key)
        if known is None:  # two threads may both look it up: the same answer either way
            known = self._known[key] = self._look_up(url, parts.username is not None)
        return known

    def _look_up(self, url: str, has_userinfo: bool) -> Settings:
        config = self._config
        proxies = {**get_environ_proxies(url), **config.proxies}
        verify: bool | str = config.verify
        if verify is True:
            verify = (
                os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            )
        netrc = None if config.auth or has_userinfo else get_netrc_auth(url)
        proxy = select_proxy(url, proxies)
        gated = proxy is None or not proxy.lower().startswith("socks")
        return Settings(proxies=proxies, verify=verify, auth=netrc, gated=gated)
