"""Sessions whose connections pass the gate (``gate.held``) at the moment of the write.

urllib3's own pools and connections, made to hold each request at its write: for urlfleet's
Sessions (``shared_adapter``, ``new_session``), and for a caller's own (``install_gate``). The
pools are shared by every thread and sized to what the open-files limit can hold.
"""

from __future__ import annotations

import contextlib
import http.client
import ssl
import threading
from collections.abc import Mapping
from typing import Any

import requests
from joblib import effective_n_jobs, parallel_config
from requests.adapters import DEFAULT_POOLSIZE, HTTPAdapter
from requests.cookies import RequestsCookieJar
from requests.utils import get_encoding_from_headers, select_proxy
from urllib3 import PoolManager, ProxyManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import SKIP_HEADER, SKIPPABLE_HEADERS
from urllib3.util.ssl_ import create_urllib3_context, resolve_cert_reqs

from urlfleet.config import FetchConfig
from urlfleet.errors import InputError
from urlfleet.fetching.gate import held
from urlfleet.fetching.headers import QuickHeadersResponse, response_headers
from urlfleet.fetching.resumption import keep_session, resuming
from urlfleet.fetching.wire import QuickConnection, QuickPool
from urlfleet.urls import origin_of, request_target

# Hosts whose idle keep-alive connections are kept (about 5 KB each, pool and connection); a
# list that cycles over more hosts than this opens a new connection (and handshake) for
# almost every request: with requests' default of 10, almost any list of many hosts would.
POOLED_HOSTS = 4096
# File descriptors left for the process itself (stdio, the list and records files, joblib's and
# loky's pipes, a DNS lookup's socket) when the pools are sized to the open-files limit...
RESERVED_FDS = 64
# ...and the fewest it can truly run with: below this, a run would die of EMFILE.
MIN_RESERVED_FDS = 16
POOL_PARAMS_KEPT = 4096  # origins whose connection pool settings are kept


class _Served(QuickConnection):
    """Whether a connection has carried a request since it was (re)connected: urllib3
    connects HTTPS connections before their first request, so a socket alone says nothing."""

    served = False
    session_kept = False  # its TLS session offered to the host's next connection, or tried
    response_class: type[http.client.HTTPResponse] = QuickHeadersResponse

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self.served = False
        self.session_kept = False

    def getresponse(self) -> Any:
        response = super().getresponse()  # type: ignore[misc]
        self._keep_tls_session()
        return response

    def quick_response(self, method: str, url: str) -> Any:
        response = super().quick_response(method, url)
        self._keep_tls_session()
        return response

    def _keep_tls_session(self) -> None:
        # Once a response has come, so has a TLS 1.3 ticket (sent right after the handshake).
        if not self.session_kept:
            self.session_kept = True
            keep_session(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        with held(self):  # type: ignore[arg-type]
            super().request(*args, **kwargs)  # type: ignore[misc]
        self.served = True

    def send_head(self, head: bytes, body: bytes | None) -> None:
        with held(self):  # type: ignore[arg-type]
            super().send_head(head, body)
        self.served = True


class _GatedHTTPConnection(_Served, HTTPConnection):
    pass


class _GatedHTTPSConnection(_Served, HTTPSConnection):
    pass


class _GatedHTTPPool(QuickPool):
    ConnectionCls = _GatedHTTPConnection


class _GatedHTTPSPool(QuickPool, HTTPSConnectionPool):
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

    Plain-HTTP requests through a proxy get one pool of proxy connections per origin host
    (``_OriginKeyedProxyManager``), as direct ones do.
    """

    def __init__(
        self,
        *,
        proxy_authorization: str | None = None,
        pool_connections: int = DEFAULT_POOLSIZE,
        pool_maxsize: int = DEFAULT_POOLSIZE,
        **kwargs: Any,
    ) -> None:
        self.proxy_authorization = proxy_authorization
        self._pool_sizes = (pool_connections, pool_maxsize)
        self._proxy_lock = threading.Lock()
        self._tls_contexts: dict[tuple[Any, Any], ssl.SSLContext] = {}
        self._pool_params: dict[tuple[str, Any, Any], tuple[dict[str, Any], dict[str, Any]]] = {}
        super().__init__(pool_connections=pool_connections, pool_maxsize=pool_maxsize, **kwargs)

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: bool | str | None,
        proxies: Mapping[str, str] | None = None,
        cert: Any = None,
    ) -> HTTPConnectionPool:
        # requests works a direct request's pool out anew each time (it parses the URL and,
        # for a CA bundle, stats the file): the answer depends only on the origin and the TLS
        # settings, so it is worked out once for each. urllib3 still picks the pool itself.
        url = request.url or ""
        if proxies and select_proxy(url, dict(proxies)) is not None:
            pool = super().get_connection_with_tls_context(
                request, verify, proxies=dict(proxies), cert=cert
            )
            assert isinstance(pool, HTTPConnectionPool)
            return pool
        key = (origin_of(url) or url, verify, cert)
        params = self._pool_params.get(key)
        if params is None:
            try:
                checked = True if verify is None else verify  # None: requests' default
                params = self.build_connection_pool_key_attributes(request, checked, cert)
            except ValueError as exc:
                raise requests.exceptions.InvalidURL(exc, request=request) from exc
            if len(self._pool_params) >= POOL_PARAMS_KEPT:
                self._pool_params.clear()
            self._pool_params[key] = params
        host_params, pool_kwargs = params
        found: HTTPConnectionPool = self.poolmanager.connection_from_host(
            **host_params, pool_kwargs=pool_kwargs
        )
        return found

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        if "Set-Cookie" in resp.headers or "Set-Cookie2" in resp.headers:
            return super().build_response(req, resp)
        # requests' own build_response, less the cookie extraction, which parses the URL and
        # walks the jar for every response to find nothing when no cookie was set.
        response = requests.Response()
        response.status_code = resp.status
        response.headers = response_headers(resp.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = resp
        response.reason = resp.reason
        url = req.url
        response.url = url.decode("utf-8") if isinstance(url, bytes) else url  # type: ignore[assignment]
        response.request = req
        response.connection = self
        return response

    def request_url(self, request: requests.PreparedRequest, proxies: Any) -> str:
        if not proxies:  # requests' answer when there is no proxy, less three parses of the URL
            target = request_target(request.url or "")
            if target is not None:
                return target
        return str(super().request_url(request, proxies))

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str, cert: Any = None
    ) -> Any:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        if host_params.get("scheme") == "https":
            # One TLS context for each verify and client-certificate setting, its CA bundle
            # loaded once: urllib3 would make a context and load the bundle for every new
            # connection (certifi's takes tens of milliseconds of CPU).
            context = self._tls_context(verify, cert)
            pool_kwargs = {  # requests types no ssl_context
                "ssl_context": context,
                "cert_reqs": pool_kwargs.get("cert_reqs"),
            }
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: bool | str | None, cert: Any) -> None:
        if getattr(conn, "conn_kw", {}).get("ssl_context") in self._tls_contexts.values():
            return  # checked and loaded once, into the pool's context (_tls_context)
        super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]

    def _tls_context(self, verify: bool | str | None, cert: Any) -> ssl.SSLContext:
        key = (verify, cert)
        context = self._tls_contexts.get(key)
        if context is not None:
            return context
        with self._proxy_lock:
            context = self._tls_contexts.get(key)
            if context is None:
                # requests' own checks and choices (its CA bundle, its error for a missing
                # one), read off what cert_verify would set on a pool.
                chosen = _TlsSettings()
                super().cert_verify(chosen, "https://", verify, cert)  # type: ignore[no-untyped-call]
                context = resuming(
                    create_urllib3_context(cert_reqs=resolve_cert_reqs(chosen.cert_reqs))
                )
                if chosen.ca_certs or chosen.ca_cert_dir:
                    context.load_verify_locations(chosen.ca_certs, chosen.ca_cert_dir)
                if chosen.cert_file:
                    context.load_cert_chain(chosen.cert_file, chosen.key_file)
                self._tls_contexts[key] = context
        return context

    def proxy_headers(self, proxy: str) -> dict[str, str]:
        # A Proxy-Authorization the user gave goes to the proxy alone: on CONNECT, and on
        # plain-HTTP requests the proxy forwards (it strips it), never on the tunnelled ones.
        headers: dict[str, str] = super().proxy_headers(proxy)
        if self.proxy_authorization and "Proxy-Authorization" not in headers:
            headers["Proxy-Authorization"] = self.proxy_authorization
        return headers

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _gate_manager(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        with self._proxy_lock:  # threads meet here on their first proxied request
            if proxy not in self.proxy_manager and not is_socks(proxy):
                manager = _OriginKeyedProxyManager(
                    proxy_url=proxy,
                    proxy_headers=self.proxy_headers(proxy),
                    num_pools=self._pool_sizes[0],
                    maxsize=self._pool_sizes[1],
                    **proxy_kwargs,
                )
                _gate_manager(manager)
                self.proxy_manager[proxy] = manager
            found: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
            return found


class _TlsSettings:
    """What requests' ``cert_verify`` sets on a pool, for a TLS context to be made from."""

    cert_reqs: str | None = None
    ca_certs: str | None = None
    ca_cert_dir: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


class _OriginKeyedProxyManager(ProxyManager):
    """A ProxyManager whose plain-HTTP connections to the proxy each serve one origin.

    urllib3 shares one pool of proxy connections between every origin, which is valid HTTP,
    but some proxies (proxy.py among them) forward every request of a keep-alive connection
    to the first request's host: a page of one host would come back as another's, and that
    host would get requests it never should. One pool per origin also keeps the proxy's
    connections to an origin within its --per-host, as direct ones are.
    """

    def connection_from_host(
        self,
        host: str | None,
        port: int | None = None,
        scheme: str | None = "http",
        pool_kwargs: dict[str, Any] | None = None,
    ) -> HTTPConnectionPool:
        if scheme != "https" and self.proxy is not None and self.proxy.scheme == "http":
            # server_hostname keys the pool and is dropped before an http pool is made.
            pool_kwargs = {**(pool_kwargs or {}), "server_hostname": f"{host}:{port}"}
        return super().connection_from_host(host, port, scheme, pool_kwargs=pool_kwargs)


def is_socks(proxy: str) -> bool:
    # SOCKS connections are urllib3's contrib classes, built their own way: never gated.
    return proxy.lower().startswith("socks")


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
    if is_socks(proxy):
        return False
    manager = adapter.proxy_manager_for(proxy)  # made now, or kept from before
    return bool(manager.pool_classes_by_scheme == _GATED_POOLS)


def open_files_limit() -> int | None:
    """Raise the soft limit on open files to the hard one where allowed; the soft limit now.

    None when there is no limit to speak of (unlimited, or no ``resource`` module).
    """
    try:
        import resource
    except ImportError:  # Windows
        return None
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard and soft != resource.RLIM_INFINITY:
            with contextlib.suppress(OSError, ValueError):  # macOS refuses an unlimited soft
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
                soft = hard
    except (OSError, ValueError):
        return None
    return None if soft == resource.RLIM_INFINITY else int(soft)


def pooled_hosts(config: FetchConfig, pool_size: int, limit: int | None) -> int:
    """How many hosts may keep idle connections, so the open sockets stay under ``limit``.

    A run holds at most one socket per thread in flight (and one file being saved, with
    ``save_dir``), plus ``pool_size`` idle ones per pooled host, plus what the process has.
    A limit too low for even the threads is an InputError; otherwise the pools shrink.
    """
    if limit is None:
        return POOLED_HOSTS
    threads = threads_for(config.jobs)
    in_flight = threads * (2 if config.save_dir is not None else 1)
    if limit < in_flight + MIN_RESERVED_FDS:
        fit = max(1, (limit - MIN_RESERVED_FDS) // (in_flight // threads))
        raise InputError(
            f"too few file descriptors: {threads} threads need at least "
            f"{in_flight + MIN_RESERVED_FDS} open files and the limit is {limit} (ulimit -n); "
            f"raise it, or use -j {fit} or fewer"
        )
    room = limit - in_flight - RESERVED_FDS
    return max(1, min(POOLED_HOSTS, room // max(1, pool_size)))


def threads_for(jobs: int) -> int:
    """How many threads ``jobs`` means, with joblib's rules (-1: one per CPU, -2: all but one)."""
    with parallel_config(backend="threading"):
        return int(effective_n_jobs(jobs))


def shared_adapter(config: FetchConfig) -> GatedAdapter:
    """The connection pools every thread's Session shares: one pool per host.

    A requests.Session is not thread-safe (cookies, settings), so each thread has its own;
    urllib3's pools are, so the connections are shared. A host then sees at most as many
    connections as it has requests in flight (--per-host), not one per thread, and a
    thread never waits on a handshake another thread's connection could have spared it.
    The frontier never has more than per_host requests out to a host, so a pool of that
    size never overflows ("Connection pool is full"). Fewer hosts keep idle connections
    when the open-files limit (raised to the hard limit first) could not hold them all.
    """
    largest = max([config.per_host, *(limits.per_host for limits in config.host_limits.values())])
    hosts = pooled_hosts(config, largest, open_files_limit())
    # Retries are tenacity's job, never urllib3's as well.
    return GatedAdapter(
        pool_connections=hosts,
        pool_maxsize=largest,
        max_retries=0,
        proxy_authorization=_header(config.headers, "Proxy-Authorization"),
    )


def _header(headers: Mapping[str, str | None], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def new_session(
    config: FetchConfig, adapter: HTTPAdapter, cookies: RequestsCookieJar | None = None
) -> requests.Session:
    """A Session for one worker thread on the shared ``adapter``, with the config's
    headers, cookies, auth, proxies and TLS verification. ``cookies``: the run's one jar,
    shared by every thread (it already holds the config's cookies)."""
    session = requests.Session()
    session.trust_env = False  # the Environment looks it up once per host instead
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = config.user_agent
    for name, value in config.headers.items():
        if name.lower() == "proxy-authorization":
            continue  # the proxy's alone: see GatedAdapter.proxy_headers
        if value is None:  # left out, requests' and urllib3's defaults too
            if name.lower() in SKIPPABLE_HEADERS:
                session.headers[name] = SKIP_HEADER
            else:
                session.headers.pop(name, None)
        else:
            session.headers[name] = value
    if cookies is not None:
        session.cookies = cookies
    else:
        session.cookies.update(dict(config.cookies))
    session.proxies.update(config.proxies)
    session.auth = config.auth
    session.verify = config.verify
    return session
