"""urlfleet's quick way over the wire against urllib3's own, side by side on real sockets.

Each case sends the same request through urllib3's ``HTTPConnectionPool.urlopen`` and through
urlfleet's ``QuickPool`` as requests calls them (no retries, no redirects, streamed), and
checks that both give the same answer, or fail with the same exception and message, and that
the server was sent the same bytes.
"""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool

from urlfleet.fetching.adapter import _GatedHTTPPool
from urlfleet.fetching.wire import QUICK
from urlfleet.loopback import LoopbackProcess, ServerSpec

pytestmark = pytest.mark.integration


def test_the_quick_way_is_open_with_the_urllib3_installed() -> None:
    assert QUICK  # else every request went urllib3's own way, and these tests proved nothing


RETRIES = HTTPAdapter(max_retries=0).max_retries  # what requests hands urllib3


@pytest.fixture(scope="module")
def hosts() -> Iterator[LoopbackProcess]:
    with LoopbackProcess(ServerSpec(hosts=1, latency=0.0, idle_timeout=0.3)) as process:
        yield process


def _answer(pool: HTTPConnectionPool, path: str, timeout: float = 5.0, **request: Any) -> Any:
    """What a request comes to: status, headers and body, or the error, its message with
    the class names and addresses of the pools (which differ between the two) taken out."""
    from urllib3.util import Timeout

    try:
        response = pool.urlopen(
            request.pop("method", "GET"), path, headers=request.pop("headers", {"X-Case": "1"}),
            body=request.pop("body", None), retries=RETRIES, redirect=False,
            assert_same_host=False, preload_content=False, decode_content=False,
            timeout=Timeout(connect=timeout, read=timeout),
        )  # fmt: skip
        body = b"".join(response.stream(65536, decode_content=True))
        response.release_conn()
        headers = {k: v for k, v in response.headers.items() if k.lower() != "date"}
        return response.status, response.reason, response.version, headers, body
    except Exception as exc:  # noqa: BLE001 - the error is the answer
        text = f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
        text = text.replace("_GatedHTTPPool", "HTTPConnectionPool").replace("_Gated", "")
        text = re.sub(r"0x[0-9a-f]+", "0x?", text)
        return text, type(getattr(exc, "reason", None)).__name__


def both(server: LoopbackProcess, path: str, **request: Any) -> tuple[Any, Any]:
    host, port = server.base_urls[0].split("//")[1].split(":")
    plain, quick = HTTPConnectionPool(host, int(port)), _GatedHTTPPool(host, int(port))
    try:
        return _answer(plain, path, **dict(request)), _answer(quick, path, **dict(request))
    finally:
        plain.close()
        quick.close()


@pytest.mark.parametrize(
    "route",
    [
        "page/{t}", "status/404/{t}", "status/204/{t}", "redirect/1/{t}", "bytes/70000/{t}",
        "gzip/3000/{t}", "chunked/5000/{t}", "chunked-truncated/5000/{t}", "short-body/400/{t}",
        "drop/{t}", "http10/300/{t}", "many-headers/40/{t}", "page/{t}?a=%7e&b=sp%20ace",
        "p\u00e5ge/{t}/sp ace",
    ],
)  # fmt: skip
def test_each_answer_and_failure_is_urllib3s(hosts: LoopbackProcess, route: str) -> None:
    token = uuid.uuid4().hex[:8]
    plain, quick = both(hosts, "/" + route.format(t=token))
    assert quick == plain
    sent = [r.headers for r in hosts.records(token)]
    if len(sent) == 2:  # what the server was sent, both times, but the X-Case header's value
        assert sent[0] == sent[1]


def test_a_body_and_other_methods_are_sent_as_urllib3_sends_them(hosts: LoopbackProcess) -> None:
    token = uuid.uuid4().hex[:8]
    for method, body in (("POST", b"a=1&b=2"), ("PUT", None), ("DELETE", None), ("HEAD", None)):
        plain, quick = both(hosts, f"/echo/{token}/{method}", method=method, body=body)
        assert quick == plain
    records = hosts.records(token)
    assert len(records) == 8
    for first, second in zip(records[::2], records[1::2], strict=True):
        assert (first.method, first.headers, first.body) == (
            second.method, second.headers, second.body
        )  # fmt: skip


def test_a_read_timeout_is_urllib3s(hosts: LoopbackProcess) -> None:
    plain, quick = both(hosts, f"/black-hole/{uuid.uuid4().hex[:8]}", timeout=0.2)
    assert quick == plain
    assert "ReadTimeoutError" in quick[0]


def test_a_refused_connection_is_urllib3s() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    answers = []
    for pool in (HTTPConnectionPool("127.0.0.1", port), _GatedHTTPPool("127.0.0.1", port)):
        answers.append(_answer(pool, "/"))
    assert answers[0] == answers[1]
    assert answers[1][1] == "NewConnectionError"


def test_a_kept_connection_the_server_closed_is_replaced(hosts: LoopbackProcess) -> None:
    import time

    host, port = hosts.base_urls[0].split("//")[1].split(":")
    pool = _GatedHTTPPool(host, int(port), maxsize=1)
    token = uuid.uuid4().hex[:8]
    try:
        first = _answer(pool, f"/page/{token}/1")
        time.sleep(0.6)  # past the server's idle timeout: it closed the kept connection
        second = _answer(pool, f"/page/{token}/2")
    finally:
        pool.close()
    assert first[0] == second[0] == 200
    assert len(hosts.records(token)) == 2
