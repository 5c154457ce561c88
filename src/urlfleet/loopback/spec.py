"""What a loopback server simulates (:class:`ServerSpec`) and what it records
(:class:`RequestRecord`), with the politeness figures drawn from records (:func:`host_loads`)."""

from __future__ import annotations

import dataclasses
import ipaddress
import math
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

# --------------------------------------------------------------------------- public data


@dataclass(frozen=True, kw_only=True)
class ServerSpec:
    """What to simulate: how many hosts, where they listen, their latency and robots.txt.

    ``addresses`` (one host per address, e.g. ``("127.0.0.2", "127.0.0.3")``, Linux only)
    overrides ``hosts``; otherwise ``hosts`` sockets listen on distinct ports of ``bind``.
    ``host_latency[i]``, when given and not None, replaces ``latency`` for host ``i``.
    ``robots`` holds ``(host_index, status, body)`` answers for ``/robots.txt``.
    ``port`` fixes the ports: host ``i`` listens on ``port + i`` (0: free ports picked by the OS,
    the default and the right choice for tests).
    Every address must be a loopback one (127.0.0.0/8, ::1) unless ``allow_non_loopback`` is
    set: the fault routes and records are for tests, not for a network.
    ``tls_cert`` and ``tls_key`` (PEM files: the certificate chain and its private key, which
    may be one file) make every host serve HTTPS; ``base_urls`` then start with ``https://``.
    ``host_tls`` holds ``(host_index, cert_path, key_path)`` entries that give one host a
    certificate of its own instead (an expired one, one for another name), with TLS on.
    ``idle_timeout`` closes a keep-alive connection that has had no request in progress and
    no bytes received for that many seconds, as Apache's KeepAliveTimeout does (None: never).
    """

    hosts: int = 4
    latency: float = 0.1
    host_latency: tuple[float | None, ...] = ()
    addresses: tuple[str, ...] = ()
    bind: str = "127.0.0.1"
    robots: tuple[tuple[int, int, str], ...] = ()
    port: int = 0
    allow_non_loopback: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    host_tls: tuple[tuple[int, str, str], ...] = ()
    idle_timeout: float | None = None

    def __post_init__(self) -> None:
        # Accept lists from callers but store tuples, so a spec stays immutable and hashable.
        for name in ("host_latency", "addresses", "robots"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "host_tls", tuple(tuple(entry) for entry in self.host_tls))
        if isinstance(self.hosts, bool) or not isinstance(self.hosts, int) or self.hosts < 1:
            raise ValueError(f"ServerSpec.hosts must be an integer >= 1, got {self.hosts!r}")
        _check_seconds("ServerSpec.latency", self.latency)
        for address in (*self.addresses, self.bind):
            _check_address(address, self.allow_non_loopback)
        if len(self.host_latency) > self.host_count:
            raise ValueError(
                f"ServerSpec.host_latency has {len(self.host_latency)} entries "
                f"but there are only {self.host_count} hosts"
            )
        for index, value in enumerate(self.host_latency):
            if value is not None:
                _check_seconds(f"ServerSpec.host_latency[{index}]", value)
        for entry in self.robots:
            index, status, _body = entry
            if not 0 <= index < self.host_count:
                raise ValueError(f"ServerSpec.robots entry {entry!r}: no host with index {index}")
            if not 100 <= status <= 599:
                raise ValueError(f"ServerSpec.robots entry {entry!r}: bad status {status}")
        for name in ("tls_cert", "tls_key"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and value):
                raise ValueError(f"ServerSpec.{name} must be a PEM file path, got {value!r}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("ServerSpec.tls_cert and ServerSpec.tls_key go together")
        self._check_host_tls()
        if self.idle_timeout is not None:
            _check_seconds("ServerSpec.idle_timeout", self.idle_timeout)
            if not self.idle_timeout > 0:
                raise ValueError(f"ServerSpec.idle_timeout must be > 0, got {self.idle_timeout!r}")
        if not 0 <= self.port <= 65536 - self.host_count:
            raise ValueError(
                f"ServerSpec.port must be 0 or leave room for {self.host_count} ports, "
                f"got {self.port!r}"
            )

    def _check_host_tls(self) -> None:
        if self.host_tls and self.tls_cert is None:
            raise ValueError("ServerSpec.host_tls needs tls_cert and tls_key (TLS for every host)")
        seen: set[int] = set()
        for entry in self.host_tls:
            if len(entry) != 3:
                raise ValueError(f"ServerSpec.host_tls entry {entry!r} is not (index, cert, key)")
            index, cert, key = entry
            if isinstance(index, bool) or not isinstance(index, int):
                raise ValueError(f"ServerSpec.host_tls entry {entry!r}: index must be an int")
            if not 0 <= index < self.host_count:
                raise ValueError(f"ServerSpec.host_tls entry {entry!r}: no host with index {index}")
            if index in seen:
                raise ValueError(f"ServerSpec.host_tls has two entries for host {index}")
            seen.add(index)
            for path in (cert, key):
                if not (isinstance(path, str) and path):
                    raise ValueError(
                        f"ServerSpec.host_tls entry {entry!r}: {path!r} is not a PEM file path"
                    )

    @property
    def scheme(self) -> str:
        """``"https"`` when the hosts serve TLS, else ``"http"``."""
        return "http" if self.tls_cert is None else "https"

    @property
    def host_count(self) -> int:
        """Number of simulated hosts (``len(addresses)`` if given, else ``hosts``)."""
        return len(self.addresses) or self.hosts

    def host_addresses(self) -> list[str]:
        """The listening address of every host, in index order."""
        return list(self.addresses) if self.addresses else [self.bind] * self.hosts

    def port_for(self, index: int) -> int:
        """The port host ``index`` asks for (0: any free port)."""
        return self.port + index if self.port else 0

    def latency_for(self, index: int) -> float:
        """The latency of host ``index``: its override if set, else the default."""
        if index < len(self.host_latency):
            override = self.host_latency[index]
            if override is not None:
                return float(override)
        return float(self.latency)

    def tls_for(self, index: int) -> tuple[str, str] | None:
        """``(cert_path, key_path)`` host ``index`` serves: its ``host_tls`` entry if any,
        else ``tls_cert``/``tls_key``; None without TLS."""
        for host_index, cert, key in self.host_tls:
            if host_index == index:
                return cert, key
        if self.tls_cert is None or self.tls_key is None:
            return None
        return self.tls_cert, self.tls_key

    @property
    def control_index(self) -> int:
        """The host a :class:`LoopbackProcess` sends control requests to: the first that
        serves the spec-wide certificate (whatever the others serve), else host 0."""
        overridden = {entry[0] for entry in self.host_tls}
        return next((i for i in range(self.host_count) if i not in overridden), 0)

    def robots_for(self, index: int) -> tuple[int, str] | None:
        """``(status, body)`` for host ``index``'s /robots.txt, or None for the default 404."""
        for host_index, status, body in self.robots:
            if host_index == index:
                return status, body
        return None


BODY_KEPT = 64 * 1024  # bytes of a request body a record keeps


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it; times are the server's ``time.monotonic()``."""

    host: str  # "127.0.0.1:PORT", the socket the client connected to
    method: str
    path: str  # request target as sent, query string included
    arrived: float  # request head parsed, before any latency
    finished: float  # response written, or the connection dropped
    status: int  # 0 when the connection was dropped without a response
    headers: dict[str, str]  # request headers, names lower-cased
    # The connection's serial number, 1, 2, ... in the order this server accepted them (all
    # hosts): equal for requests that reused one keep-alive connection. 0: not known (records
    # made by hand, or JSON from before the field existed).
    connection: int = 0
    # The request body, latin-1 decoded (so any bytes survive), its first BODY_KEPT bytes only.
    body: str = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RequestRecord:
        """The inverse of :meth:`to_json`."""
        return cls(
            host=str(data["host"]),
            method=str(data["method"]),
            path=str(data["path"]),
            arrived=float(data["arrived"]),
            finished=float(data["finished"]),
            status=int(data["status"]),
            headers={str(k): str(v) for k, v in data["headers"].items()},
            connection=int(data.get("connection", 0)),
            body=str(data.get("body", "")),
        )


@dataclass(frozen=True)
class HostLoad:
    """What one host saw of a client's politeness, from its records."""

    host: str
    requests: int
    max_in_flight: int  # most requests open ([arrived, finished]) at one instant
    min_gap: float  # shortest time between two request arrivals; inf for fewer than 2


def host_loads(records: list[RequestRecord]) -> dict[str, HostLoad]:
    """Per-host politeness figures (max in flight, min gap between starts) of ``records``."""
    by_host: dict[str, list[RequestRecord]] = {}
    for record in records:
        by_host.setdefault(record.host, []).append(record)
    return {host: _host_load(host, group) for host, group in by_host.items()}


def _host_load(host: str, records: list[RequestRecord]) -> HostLoad:
    # Sweep over start (+1) and end (-1) events; on a tie the end goes first, so a request
    # that starts the instant another finished does not count as overlapping it.
    events = sorted([(r.arrived, 1) for r in records] + [(r.finished, -1) for r in records])
    depth = deepest = 0
    for _, step in events:
        depth += step
        deepest = max(deepest, depth)
    starts = sorted(r.arrived for r in records)
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    return HostLoad(host, len(records), deepest, min(gaps, default=math.inf))


def _check_seconds(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number of seconds, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")


def _check_address(address: str, allow_non_loopback: bool) -> None:
    # An IP literal listens on exactly one socket; a name like "localhost" may resolve to
    # several (IPv4 and IPv6) with different ports, which would break "one host, one port".
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"ServerSpec address {address!r} is not an IP address") from None
    if not (ip.is_loopback or allow_non_loopback):
        raise ValueError(
            f"ServerSpec address {address!r} is not a loopback address "
            "(allow_non_loopback=True, or --allow-non-loopback, listens on it anyway)"
        )


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


# --------------------------------------------------------------------------- hosts


@dataclass
class _Host:
    """One simulated host: its socket address, latency, robots.txt and URL scheme."""

    address: str
    latency: float
    robots: tuple[int, str] | None
    scheme: str = "http"
    port: int = 0
    key: str = ""  # "address:port", set once the socket listens

    def bound(self, port: int) -> None:
        self.port = port
        self.key = f"{_url_host(self.address)}:{port}"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.key}"


_S = TypeVar("_S", bound="Started")


class Started:
    """A server's life as a context manager: started on entry, stopped on exit, its hosts'
    base URLs known in between (the thread-run server and the one in a process of its own)."""

    _urls: list[str]

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
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
    def base_urls(self) -> list[str]:
        """``["http://127.0.0.1:PORT", ...]`` (https with TLS), one per host in index order."""
        if not self._urls:
            raise RuntimeError(f"{type(self).__name__} not started")
        return list(self._urls)
