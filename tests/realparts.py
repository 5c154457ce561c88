"""Real parts for tests: a forward proxy, TLS certificates, private host names, an HTTPS server.

A pytest plugin (``pytest_plugins = ["tests.realparts"]`` in tests/conftest.py) with:

``forward_proxy`` (session)
    A :class:`ForwardProxy`: proxy.py in a child process on 127.0.0.1, forwarding plain HTTP
    (absolute-form requests) and CONNECT tunnels to any host and port. ``proxy_seen(proxy)``
    (or ``proxy.seen()``) lists what it forwarded; ``proxy.clear()`` forgets that.
``tls_files`` (session)
    A :class:`TlsFiles`: a trustme CA and one server certificate for 127.0.0.1-127.0.0.20,
    ::1, localhost, \\*.test, \\*.urlfleet.test and xn--bcher-kva.test, as PEM files.
``hosts_mapping`` (function)
    A :class:`HostsMapping` installed in this process: ``hosts_mapping.add("bücher.test",
    "127.0.0.2")`` makes the name resolve to that address until the test ends. For a child
    process, ``child_env(mapping)`` gives an environment that does the same there.
:class:`HttpsServer`
    A small threaded HTTPS server (stdlib ``http.server`` + ``ssl``) that records requests.

Everything listens on loopback addresses only, and every wait is bounded.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from tests.hostmap import _urlfleet_hostmap as hostmap

__all__ = [
    "DEFAULT_TLS_IDENTITIES",
    "ForwardProxy",
    "HostsMapping",
    "HttpsServer",
    "TlsFiles",
    "child_env",
    "forward_proxy",
    "hosts_mapping",
    "make_tls_files",
    "normalize_host",
    "proxy_seen",
    "tls_files",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
HOSTMAP_DIR = Path(__file__).resolve().parent / "hostmap"
HOSTS_ENV = hostmap.ENV
PROXY_PLUGIN = "tests.proxy_plugin.Counter"
PROXY_RECORDS_ENV = "URLFLEET_PROXY_RECORDS"  # tests/proxy_plugin.py reads these three
PROXY_LIFELINE_ENV = "URLFLEET_PROXY_LIFELINE"
PROXY_KEEP_ALIVE_ENV = "URLFLEET_PROXY_KEEP_ALIVE"

normalize_host = hostmap.normalize


def _prepend_path(directory: Path, existing: str | None) -> str:
    parts = [p for p in (existing or "").split(os.pathsep) if p and Path(p) != directory]
    return os.pathsep.join([str(directory), *parts])


# --------------------------------------------------------------------------- forward proxy


class ForwardProxy:
    """proxy.py as a child process on ``127.0.0.1:<free port>``; a context manager.

    >>> with ForwardProxy() as proxy:
    ...     requests.get(url, proxies={"http": proxy.url, "https": proxy.url})
    ...     proxy.seen()  # [{"method": "GET", "target": "127.0.0.1:PORT", ...}]

    Each plain HTTP request is made the last on its connection (see tests/proxy_plugin.py:
    proxy.py would send later requests of a keep-alive connection to the first request's
    host); ``keep_alive=True`` keeps proxy.py's own behaviour, where such a request gets a 502
    from the plugin instead of a wrong host's answer. ``hosts`` maps names for the proxy's
    own lookups (it resolves the targets, not the client). The child ends with :meth:`stop`,
    and on its own if this process dies.
    """

    def __init__(
        self,
        *,
        hosts: HostsMapping | Mapping[str, str] | None = None,
        keep_alive: bool = False,
        start_timeout: float = 20.0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.hosts = dict(hosts.names if isinstance(hosts, HostsMapping) else hosts or {})
        self.keep_alive = keep_alive
        self.start_timeout = start_timeout
        self.extra_args = tuple(extra_args)
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._stderr: Any = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the child and return once it accepts connections (RuntimeError, with its
        stderr and log, if that takes longer than ``start_timeout`` or it exits)."""
        if self._proc is not None:
            raise RuntimeError("ForwardProxy already started")
        self._dir = tempfile.TemporaryDirectory(prefix="urlfleet-proxy-")
        work = Path(self._dir.name)
        self.records_path.touch()
        env = child_env(self.hosts) if self.hosts else dict(os.environ)
        env["PYTHONPATH"] = _prepend_path(REPO_ROOT, env.get("PYTHONPATH"))
        env[PROXY_RECORDS_ENV] = str(self.records_path)
        env[PROXY_LIFELINE_ENV] = str(os.getpid())
        env.pop(PROXY_KEEP_ALIVE_ENV, None)
        if self.keep_alive:
            env[PROXY_KEEP_ALIVE_ENV] = "1"
        command = [
            sys.executable, "-m", "proxy",
            "--hostname", "127.0.0.1",
            "--port", "0",
            "--port-file", str(work / "port"),
            "--num-acceptors", "1",  # one process serves all: enough for tests, fast to start
            "--data-dir", str(work / "data"),  # not ~/.proxy
            "--cache-dir", str(work / "cache"),
            "--log-file", str(self.log_path),
            "--log-level", "INFO",
            "--plugins", PROXY_PLUGIN,
            *self.extra_args,
        ]  # fmt: skip
        self._stderr = open(work / "stderr", "w+b")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._stderr,
            stderr=self._stderr,
            env=env,
            cwd=work,
            start_new_session=True,  # its own process group: a terminal's ^C is ours to handle
        )
        try:
            self.port = self._wait_ready(work / "port")
        except BaseException as exc:
            details = self.diagnostics()
            self.stop()
            if isinstance(exc, RuntimeError):
                raise RuntimeError(f"{exc}\n{details}") from None
            raise

    def _wait_ready(self, port_file: Path) -> int:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        port = 0
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"proxy.py exited with status {self._proc.returncode}")
            if not port:
                port = _read_port(port_file)
            if port:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
                except OSError:
                    pass
                else:
                    return port
            time.sleep(0.02)
        raise RuntimeError(f"proxy.py did not accept connections within {self.start_timeout} s")

    def stop(self) -> None:
        """Terminate the child (SIGTERM, then SIGKILL to its group after 10 s), reap it and
        delete its files; idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    # Not reaped yet, so the group id is still ours: take its acceptors too.
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    proc.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
        self.port = 0

    def __enter__(self) -> ForwardProxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ----------------------------------------------------------------- use

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the value for ``proxies={"http": ..., "https": ...}``."""
        if not self.port:
            raise RuntimeError("ForwardProxy not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def records_path(self) -> Path:
        if self._dir is None:
            raise RuntimeError("ForwardProxy not started")
        return Path(self._dir.name) / "seen.jsonl"

    @property
    def log_path(self) -> Path:
        if self._dir is None:
            raise RuntimeError("ForwardProxy not started")
        return Path(self._dir.name) / "proxy.log"

    def seen(self) -> list[dict[str, Any]]:
        """What the proxy was asked to forward since start or :meth:`clear`, in order: one dict
        per plain HTTP request and per CONNECT, with ``method``, ``target`` ("host:port"),
        ``host``, ``port``, ``path`` (the request target), ``upstream`` (where proxy.py sent
        it), ``pid`` and ``time``. Written before the request goes upstream, so complete as
        soon as the client has its response."""
        text = self.records_path.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.endswith("}")]

    def clear(self) -> None:
        """Forget what was seen (the proxy appends, so truncating is safe while it runs)."""
        os.truncate(self.records_path, 0)

    def diagnostics(self) -> str:
        """The child's stderr and the tail of proxy.py's log, for error messages."""
        parts = []
        if self._stderr is not None:
            self._stderr.flush()
            self._stderr.seek(0)
            stderr = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
            tail = "\n".join(stderr[-20:]) or "(empty)"
            parts.append(f"proxy.py stderr (last 20 lines):\n{tail}")
        if self._dir is not None and self.log_path.exists():
            log = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
            parts.append("proxy.py log (last 20 lines):\n" + "\n".join(log[-20:]))
        return "\n".join(parts)


def _read_port(port_file: Path) -> int:
    try:
        text = port_file.read_text(encoding="ascii")
    except (FileNotFoundError, UnicodeDecodeError):
        return 0
    # proxy.py writes the number, then a newline: without the newline it may be half there.
    first = text.split("\n", 1)[0] if "\n" in text else ""
    return int(first) if first.isdigit() else 0


def proxy_seen(proxy: ForwardProxy) -> list[dict[str, Any]]:
    """``proxy.seen()``: what ``proxy`` forwarded since it started or was cleared."""
    return proxy.seen()


@pytest.fixture(scope="session")
def forward_proxy() -> Iterator[ForwardProxy]:
    """One proxy.py for the whole session; call ``forward_proxy.clear()`` before counting."""
    with ForwardProxy() as proxy:
        yield proxy


# --------------------------------------------------------------------------- TLS files

DEFAULT_TLS_IDENTITIES: tuple[str, ...] = (
    *(f"127.0.0.{i}" for i in range(1, 21)),
    "::1",
    "localhost",
    "*.test",  # no use with OpenSSL clients: it never matches a wildcard right under a TLD
    "*.urlfleet.test",  # so this one is for any name a test makes up, e.g. "a.urlfleet.test"
    "xn--bcher-kva.test",  # bücher.test
)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: ``ca_path`` (the CA to trust, e.g. ``verify=ca_path``), ``cert_path`` (the
    server certificate and its chain) and ``key_path`` (the server's private key)."""

    ca_path: str
    cert_path: str
    key_path: str
    identities: tuple[str, ...] = field(default=DEFAULT_TLS_IDENTITIES)

    def server_context(self) -> ssl.SSLContext:
        """A server-side SSLContext with the certificate loaded."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client-side SSLContext that trusts only the test CA (hostname checks on)."""
        return ssl.create_default_context(cafile=self.ca_path)


def make_tls_files(
    directory: str | os.PathLike[str], identities: tuple[str, ...] = DEFAULT_TLS_IDENTITIES
) -> TlsFiles:
    """A fresh trustme CA and a server certificate for ``identities``, written to
    ``directory`` as ca.pem, server.pem (certificate chain) and server.key."""
    import trustme

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    cert = ca.issue_cert(*identities)
    files = TlsFiles(
        ca_path=str(folder / "ca.pem"),
        cert_path=str(folder / "server.pem"),
        key_path=str(folder / "server.key"),
        identities=tuple(identities),
    )
    ca.cert_pem.write_to_path(files.ca_path)
    Path(files.cert_path).write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(files.key_path)
    return files


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """One CA and server certificate for the session (see :data:`DEFAULT_TLS_IDENTITIES`)."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


# --------------------------------------------------------------------------- host names


class HostsMapping:
    """Names (Unicode or IDNA, any case, trailing dot or not) mapped to loopback addresses.

    :meth:`getaddrinfo` resolves them and passes every other lookup to the ``getaddrinfo``
    that was current when the mapping was made; :meth:`install` puts it in place of
    ``socket.getaddrinfo`` (through ``monkeypatch``, so it is undone after the test). Names
    added later are seen at once. :meth:`child_env` gives the same mapping to a child.
    """

    def __init__(self, names: Mapping[str, str] | None = None) -> None:
        self.names: dict[str, str] = {}
        self._original = socket.getaddrinfo
        self.getaddrinfo = hostmap.make_getaddrinfo(self.names, self._original)
        for name, address in (names or {}).items():
            self.add(name, address)

    def add(self, name: str, address: str) -> str:
        """Map ``name`` to ``address`` (a loopback IP); returns the normalized name."""
        key = hostmap.normalize(name)
        if not key:
            raise ValueError(f"empty host name {name!r}")
        self.names[key] = hostmap.check_address(address)
        return key

    def remove(self, name: str) -> None:
        self.names.pop(hostmap.normalize(name), None)

    def resolve(self, name: str) -> str | None:
        """The address ``name`` is mapped to, or None."""
        return self.names.get(hostmap.normalize(name))

    def install(self, monkeypatch: pytest.MonkeyPatch) -> HostsMapping:
        monkeypatch.setattr(socket, "getaddrinfo", self.getaddrinfo)
        return self

    def child_env(self, base_env: Mapping[str, str] | None = None) -> dict[str, str]:
        return child_env(self, base_env)

    def __repr__(self) -> str:
        return f"HostsMapping({self.names!r})"


def child_env(
    mapping: HostsMapping | Mapping[str, str], base_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """An environment (a copy of ``base_env``, default ``os.environ``) in which a Python child
    resolves ``mapping``'s names the same way: tests/hostmap first on PYTHONPATH (its
    sitecustomize patches ``socket.getaddrinfo``) and ``URLFLEET_TEST_HOSTS`` set. Children
    started with ``-I``, ``-E`` or ``-S`` skip PYTHONPATH or sitecustomize and are not mapped."""
    names = mapping.names if isinstance(mapping, HostsMapping) else hostmap.normalized(mapping)
    env = dict(os.environ if base_env is None else base_env)
    env["PYTHONPATH"] = _prepend_path(HOSTMAP_DIR, env.get("PYTHONPATH"))
    env[HOSTS_ENV] = json.dumps(names, sort_keys=True)
    return env


@pytest.fixture
def hosts_mapping(monkeypatch: pytest.MonkeyPatch) -> HostsMapping:
    """An empty :class:`HostsMapping`, installed in this process for the test."""
    return HostsMapping().install(monkeypatch)


# --------------------------------------------------------------------------- HTTPS server


class HttpsServer:
    """A threaded HTTPS/1.1 server on ``address`` (a free port) with the ``tls`` certificate.

    Every GET is answered ``200 ok <path>`` and recorded in :attr:`requests` as
    ``{"method", "path", "host", "client", "headers"}``. TLS handshakes happen in the
    connection's thread, so a stalled client cannot block the others; errors (a client that
    hangs up, one that does not trust the CA) are kept in :attr:`errors`, not printed.

    >>> with HttpsServer(tls_files) as server:
    ...     requests.get(server.url + "/x", verify=tls_files.ca_path)
    """

    def __init__(self, tls: TlsFiles, address: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.tls = tls
        self.address = address
        self.timeout = timeout
        self.requests: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        self._server: _TlsHttpServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("HttpsServer already started")
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        server_class = type("_Server", (_TlsHttpServer,), {"address_family": family})
        server = server_class((self.address, 0), _TlsHandler)
        server.owner = self
        server.context = self.tls.server_context()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> HttpsServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("HttpsServer not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``https://ADDRESS:PORT`` (IPv6 in brackets)."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"https://{host}:{self.port}"


class _TlsHttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    owner: HttpsServer
    context: ssl.SSLContext

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(self.owner.timeout)
        tls = self.context.wrap_socket(request, server_side=True)
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.owner.errors.append(sys.exc_info()[1] or RuntimeError("unknown error"))


class _TlsHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _TlsHttpServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.owner.requests.append(
            {
                "method": self.command,
                "path": self.path,
                "host": self.headers.get("Host"),
                "client": self.client_address[0],
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
        )
        body = f"ok {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass
