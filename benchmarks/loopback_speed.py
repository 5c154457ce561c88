"""How many keep-alive requests per second the loopback server answers, against http.server.

    python benchmarks/loopback_speed.py [--requests 5000] [--threads 4] [--rounds 3]

Both servers run in a child process: the loopback server as LoopbackProcess (one host, no
latency, /status/200), and http.server's ThreadingHTTPServer with protocol_version HTTP/1.1
and a handler that answers the same tiny 200 (Nagle off, so its two writes are not delayed).
The same client drives both: --threads threads, each with one keep-alive http.client
connection, sharing --requests requests; the connections are opened (and used once) before
the clock starts. Each round's rate is requests / wall time; the median of --rounds is shown,
with the server process's CPU time per request (from /proc, Linux only): with a Python
client on a small machine the client is the bottleneck, and the server's CPU is what shows
how much room the server leaves the client it is testing.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from urlfleet.loopback import LoopbackProcess, ServerSpec  # noqa: E402

BODY = b"200 OK\n"  # what the loopback server's /status/200 answers
PATH = "/status/200/speed"


class _TinyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # the head and the body are two writes

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def _serve_http_server() -> None:
    """The child: print the port, serve until stdin closes (the parent's lifeline)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TinyHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()
    server.shutdown()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (None where /proc is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def http_server_child() -> Iterator[tuple[str, int]]:
    command = [sys.executable, __file__, "--http-server-child"]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as child:
        assert child.stdout is not None and child.stdin is not None
        try:
            yield f"http://127.0.0.1:{int(child.stdout.readline())}", child.pid
        finally:
            child.stdin.close()
            child.wait(timeout=10)


@contextmanager
def loopback_child() -> Iterator[tuple[str, int]]:
    with LoopbackProcess(ServerSpec(hosts=1, latency=0)) as server:
        assert server.pid is not None
        yield server.base_urls[0], server.pid


def one_round(base_url: str, requests: int, threads: int) -> float:
    """Requests per second of ``threads`` keep-alive clients sharing ``requests``."""
    parts = urlsplit(base_url)
    connections = [
        http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        for _ in range(threads)
    ]
    for connection in connections:  # connect and warm up outside the clock
        get(connection)
    shares = [requests // threads + (i < requests % threads) for i in range(threads)]
    start = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def client(connection: http.client.HTTPConnection, count: int) -> None:
        start.wait()
        try:
            for _ in range(count):
                get(connection)
        except BaseException as exc:
            errors.append(exc)

    workers = [
        threading.Thread(target=client, args=(c, n))
        for c, n in zip(connections, shares, strict=True)
    ]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    for connection in connections:
        connection.close()
    if errors:
        raise errors[0]
    return requests / elapsed


def get(connection: http.client.HTTPConnection) -> None:
    connection.request("GET", PATH)
    response = connection.getresponse()
    if response.status != 200 or response.read() != BODY:
        raise RuntimeError(f"unexpected answer {response.status}")


def measure(
    name: str,
    server: Callable[[], AbstractContextManager[tuple[str, int]]],
    args: argparse.Namespace,
) -> tuple[float, float | None]:
    """Median requests/s and median server CPU microseconds per request."""
    rates: list[float] = []
    costs: list[float] = []
    with server() as (base_url, pid):
        for round_ in range(args.rounds):
            cpu_before = cpu_seconds(pid)
            rates.append(one_round(base_url, args.requests, args.threads))
            cpu_after = cpu_seconds(pid)
            line = f"  {name} round {round_ + 1}: {rates[-1]:,.0f} req/s"
            if cpu_before is not None and cpu_after is not None:
                # The warm-up requests are few (one per thread): not worth subtracting.
                costs.append((cpu_after - cpu_before) / args.requests * 1e6)
                line += f", server CPU {costs[-1]:.0f} us/request"
            print(line, flush=True)
    return statistics.median(rates), statistics.median(costs) if costs else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="per round (default 5000)")
    parser.add_argument("--threads", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="median of (default 3)")
    parser.add_argument("--http-server-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.http_server_child:
        _serve_http_server()
        return
    print(f"{args.requests} requests per round, {args.threads} keep-alive client threads")
    loopback, loopback_cpu = measure("loopback   ", loopback_child, args)
    stdlib, stdlib_cpu = measure("http.server", http_server_child, args)
    print(
        f"loopback {loopback:,.0f} req/s vs {stdlib:,.0f} req/s for http.server: "
        f"{loopback / stdlib:.2f}x (medians of {args.rounds})"
    )
    if loopback_cpu is not None and stdlib_cpu is not None:
        print(
            f"server CPU per request: loopback {loopback_cpu:.0f} us vs {stdlib_cpu:.0f} us "
            f"for http.server: {stdlib_cpu / loopback_cpu:.1f}x less"
        )


if __name__ == "__main__":
    main()
