"""Shared fixtures: no proxies from the environment, a fake clock, and the loopback server."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from urlfleet.loopback import LoopbackProcess, ServerSpec

pytest_plugins = ["tests.realparts"]


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's HTTP_PROXY must not send loopback traffic elsewhere.
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name, raising=False)


# Seconds by which a loopback server's arrival stamps may shorten a gap the client kept: the
# server process can be descheduled for a few milliseconds on a busy machine, and stamps a
# request late. Politeness assertions from the server's side allow this much, no more.
SERVER_SLACK = 0.03


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


@pytest.fixture(scope="session")
def server() -> Iterator[LoopbackProcess]:
    """Eight simulated hosts, 50 ms latency, in a process of their own."""
    with LoopbackProcess(ServerSpec(hosts=8, latency=0.05)) as process:
        yield process
