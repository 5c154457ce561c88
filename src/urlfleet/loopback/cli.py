"""The command line: ``python -m urlfleet.loopback`` and the argv a child is started with."""

from __future__ import annotations

import argparse
import sys

from .server import _serve
from .spec import ServerSpec


def _parse_host_latency(text: str) -> tuple[float | None, ...]:
    """``"0:1.0,3:0.5"`` -> ``(1.0, None, None, 0.5)``."""
    overrides: dict[int, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        index, colon, seconds = item.partition(":")
        if not colon or not index.isdigit():
            raise ValueError(f"--host-latency item {item!r} is not INDEX:SECONDS")
        overrides[int(index)] = float(seconds)
    if not overrides:
        return ()
    return tuple(overrides.get(i) for i in range(max(overrides) + 1))


def _parse_robots(text: str) -> tuple[int, int, str]:
    index, _, rest = text.partition(":")
    status, colon, body = rest.partition(":")
    if not colon or not index.isdigit() or not status.isdigit():
        raise ValueError(f"--robots {text!r} is not INDEX:STATUS:BODY")
    return int(index), int(status), body


def _parse_host_tls(text: str) -> tuple[int, str, str]:
    """``"1:cert.pem:key.pem"`` -> ``(1, "cert.pem", "key.pem")``; the key's path is after
    the last colon, so only the certificate's may contain one."""
    index, _, rest = text.partition(":")
    cert, colon, key = rest.rpartition(":")
    if not colon or not index.isdigit() or not cert or not key:
        raise ValueError(f"--host-tls {text!r} is not INDEX:CERT:KEY")
    return int(index), cert, key


def _spec_to_argv(spec: ServerSpec) -> list[str]:
    """Command-line arguments that make :func:`main` rebuild ``spec``."""
    argv = ["--hosts", str(spec.hosts), "--latency", repr(spec.latency), "--bind", spec.bind]
    if spec.port:
        argv += ["--port", str(spec.port)]
    overrides = [f"{i}:{v!r}" for i, v in enumerate(spec.host_latency) if v is not None]
    if overrides:
        argv += ["--host-latency", ",".join(overrides)]
    if spec.addresses:
        argv += ["--addresses", ",".join(spec.addresses)]
    for index, status, body in spec.robots:
        argv += [f"--robots={index}:{status}:{body}"]
    if spec.allow_non_loopback:
        argv += ["--allow-non-loopback"]
    if spec.idle_timeout is not None:
        argv += ["--idle-timeout", repr(spec.idle_timeout)]
    if spec.tls_cert is not None and spec.tls_key is not None:
        argv += ["--tls-cert", spec.tls_cert, "--tls-key", spec.tls_key]
    for index, cert, key in spec.host_tls:
        if ":" in key:
            raise ValueError(f"--host-tls cannot pass a key path with a colon: {key!r}")
        argv += [f"--host-tls={index}:{cert}:{key}"]
    return argv


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m urlfleet.loopback",
        description="Loopback HTTP test server: simulated hosts with latency and fault routes.",
    )
    parser.add_argument("--hosts", type=int, default=4, help="number of hosts (default 4)")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds before each answer")
    parser.add_argument("--host-latency", default="", help="per-host latency, e.g. 0:1.0,3:0.5")
    parser.add_argument("--addresses", default="", help="one host per address, e.g. 127.0.0.2")
    parser.add_argument("--bind", default="127.0.0.1", help="address when --addresses is empty")
    parser.add_argument(
        "--port", type=int, default=0, help="host i listens on PORT+i (default 0: free ports)"
    )
    parser.add_argument(
        "--robots", action="append", default=[], help="INDEX:STATUS:BODY for /robots.txt"
    )
    parser.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="allow --bind/--addresses outside 127.0.0.0/8 and ::1 (off: loopback only)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        help="close keep-alive connections idle this many seconds (default: never)",
    )
    parser.add_argument("--tls-cert", help="PEM certificate chain: serve HTTPS (with --tls-key)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert (may be the same file)")
    parser.add_argument(
        "--host-tls",
        action="append",
        default=[],
        help="INDEX:CERT:KEY: host INDEX serves this certificate instead (repeatable)",
    )
    parser.add_argument("--ready-line", action="store_true", help="print 'READY <urls>' too")
    parser.add_argument(
        "--exit-on-stdin-eof", action="store_true", help="stop when stdin closes (for parents)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m urlfleet.loopback [--hosts N] [--latency S] ...``; see ``--help``."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        spec = ServerSpec(
            hosts=args.hosts,
            latency=args.latency,
            host_latency=_parse_host_latency(args.host_latency),
            addresses=tuple(a.strip() for a in args.addresses.split(",") if a.strip()),
            bind=args.bind,
            robots=tuple(_parse_robots(r) for r in args.robots),
            port=args.port,
            allow_non_loopback=args.allow_non_loopback,
            idle_timeout=args.idle_timeout,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            host_tls=tuple(_parse_host_tls(t) for t in args.host_tls),
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        _serve(spec, out=sys.stdout, ready_line=args.ready_line, watch_stdin=args.exit_on_stdin_eof)
    except OSError as exc:  # e.g. 127.0.0.2 cannot be bound on macOS
        print(f"loopback: {exc}", file=sys.stderr)
        return 1
    return 0
