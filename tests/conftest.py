"""Shared fixtures: no proxies from the environment, a fake clock, and the loopback server."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.gaps import ClientWrites
from urlfleet.loopback import LoopbackProcess, ServerSpec

pytest_plugins = ["tests.realparts"]


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's HTTP_PROXY must not send loopback traffic elsewhere.
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name, raising=False)


# Seconds by which a loopback server's arrival stamps may shorten a gap the client kept: the
# server is another process, and on a busy machine it may be scheduled late and stamp a
# request late (then the gap to the next one looks short). With two CPU-bound loops beside a
# run on 2 cores, the shortest of 28 gaps of 0.105 s (64 threads, 4 hosts) was seen up to
# 0.043 s short, with stamps up to 0.14 s late. Politeness assertions from the server's side
# allow this much; the exact assertion is on the client's own write stamps (tests/gaps.py).
SERVER_SLACK = 0.06
# The same through proxy.py (one acceptor process, a new upstream connection per plain HTTP
# request): a request waits for the proxy to be scheduled as well. Under the same load, gaps
# of 0.155 s reached the server up to 0.084 s short.
PROXY_SLACK = 0.1


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client_writes(monkeypatch: pytest.MonkeyPatch) -> ClientWrites:
    """Each request's write stamp, as this process's urlfleet took it, for this test."""
    return ClientWrites.installed(monkeypatch)


@pytest.fixture(scope="session")
def server() -> Iterator[LoopbackProcess]:
    """Eight simulated hosts, 50 ms latency, in a process of their own."""
    with LoopbackProcess(ServerSpec(hosts=8, latency=0.05)) as process:
        yield process
