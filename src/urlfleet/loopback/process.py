"""The server in a child process, driven over its control routes."""

from __future__ import annotations

import http.client
import json
import os
import queue
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import IO, Any

from .cli import _spec_to_argv
from .routes import CONTROL_PREFIX
from .server import READY_PREFIX
from .spec import RequestRecord, ServerSpec, Started

_START_TIMEOUT = 20.0


def _request_json(
    base_url: str, route: str, tls: ssl.SSLContext | None = None, timeout: float = 30.0
) -> Any:
    """GET a control route with http.client (no proxies, no extra dependencies)."""
    parts = urllib.parse.urlsplit(base_url)
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=timeout, context=tls
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        connection.request("GET", route)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"loopback control {route} answered {response.status}: {body!r}")
    return json.loads(body)


def _pinned_context(cert_path: str) -> ssl.SSLContext:
    """A client context that trusts exactly the certificates in ``cert_path``, the ones the
    child serves: partial chains let the leaf itself be the trust anchor, and its names need
    not include the address we connect to, since no other certificate can pass."""
    context = ssl.create_default_context(cafile=cert_path)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.check_hostname = False
    return context


class LoopbackProcess(Started):
    """The same server in a child process, so its CPU does not compete with the client's GIL.

    >>> with LoopbackProcess(ServerSpec(hosts=2, latency=0)) as server:
    ...     url = server.base_urls[1]
    """

    def __init__(self, spec: ServerSpec, *, start_timeout: float = _START_TIMEOUT) -> None:
        self.spec = spec
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._urls: list[str] = []
        self._tls: ssl.SSLContext | None = None

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Spawn ``python -m urlfleet.loopback`` and wait for its READY line (RuntimeError
        with the child's stderr if it does not come within ``start_timeout`` seconds)."""
        if self._proc is not None:
            raise RuntimeError("LoopbackProcess already started")
        command = [sys.executable, "-m", "urlfleet.loopback", *_spec_to_argv(self.spec)]
        command += ["--ready-line", "--exit-on-stdin-eof"]
        self._stderr = tempfile.TemporaryFile()
        # stdin stays open as a lifeline: if this process dies, the child sees EOF and exits.
        self._proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=_child_env(),
        )
        lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(
            target=_pump_lines, args=(self._proc.stdout, lines), daemon=True
        )
        self._reader.start()
        try:
            self._urls = self._wait_ready(lines)
        except BaseException:
            error = self._child_stderr()
            self.stop()
            if error is None:
                raise
            raise RuntimeError(f"loopback child did not start: {error}") from None
        pems = self.spec.tls_for(self.spec.control_index)
        if pems is not None:  # the child loaded it: it is a readable chain
            try:
                self._tls = _pinned_context(pems[0])
            except BaseException:
                self.stop()
                raise

    def _wait_ready(self, lines: queue.Queue[str | None]) -> list[str]:
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"no READY line within {self.start_timeout} s") from None
            if line is None:
                raise RuntimeError("exited before its READY line")
            if line.startswith(READY_PREFIX):
                return line[len(READY_PREFIX) :].split()

    def _child_stderr(self) -> str | None:
        if self._stderr is None:
            return None
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").strip()
        return text or "(no stderr)"

    def stop(self) -> None:
        """Terminate the child, reap it and close its pipes (idempotent)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if self._reader is not None:
                self._reader.join(timeout=10)  # EOF follows the exit
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()
        self._reader = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self._urls = []

    @property
    def _control_url(self) -> str:
        return self.base_urls[self.spec.control_index]

    def records(self, contains: str | None = None) -> list[RequestRecord]:
        """The child's records (all hosts), fetched over the control route."""
        route = CONTROL_PREFIX + "records"
        if contains is not None:
            route += "?" + urllib.parse.urlencode({"contains": contains})
        data = _request_json(self._control_url, route, self._tls)
        return [RequestRecord.from_json(item) for item in data]

    def clear(self) -> None:
        """Forget the child's records and fault counters."""
        _request_json(self._control_url, CONTROL_PREFIX + "clear", self._tls)

    def stats(self) -> dict[str, Any]:
        """The child's counters (see :meth:`LoopbackServer.stats`); each call is 1 connection."""
        route = CONTROL_PREFIX + "stats"
        result: dict[str, Any] = _request_json(self._control_url, route, self._tls)
        return result

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the server process has used so far."""
        return float(self.stats()["cpu_s"])


def _pump_lines(stream: IO[bytes] | None, lines: queue.Queue[str | None]) -> None:
    """Move the child's stdout lines into ``lines`` until EOF (then None)."""
    if stream is not None:
        for raw in stream:
            lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
    lines.put(None)


def _child_env() -> dict[str, str]:
    """The environment for the child: ours, plus our package's root on PYTHONPATH if this
    process found urlfleet through a path the child would not have (e.g. a test runner's)."""
    env = dict(os.environ)
    root = Path(__file__).resolve().parents[2]  # src/ above urlfleet/loopback/
    on_path = {Path(p).resolve() for p in sys.path if p}
    # A site directory must not go on PYTHONPATH: that would put it ahead of the stdlib.
    if root not in on_path or root.name in ("site-packages", "dist-packages"):
        return env
    existing = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = str(root) + (os.pathsep + existing if existing else "")
    return env
