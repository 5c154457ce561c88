"""The real parts of tests/realparts.py work end to end, with plain requests and real servers:
proxy.py forwarding HTTP and CONNECT, NO_PROXY, trustme certificates and private host names."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.realparts import (
    ForwardProxy,
    HostsMapping,
    HttpsServer,
    TlsFiles,
    child_env,
    normalize_host,
    proxy_seen,
)
from urlfleet.loopback import LoopbackServer, ServerSpec

pytestmark = pytest.mark.integration

TIMEOUT = 10


@pytest.fixture(scope="module")
def loopback() -> Iterator[LoopbackServer]:
    with LoopbackServer(ServerSpec(hosts=2, latency=0)) as server:
        yield server


@pytest.fixture(scope="module")
def mapped_server() -> Iterator[LoopbackServer]:
    """One simulated host on 127.0.0.2, for the names we map there."""
    with LoopbackServer(ServerSpec(addresses=("127.0.0.2",), latency=0)) as server:
        yield server


@pytest.fixture(scope="module")
def https_server(tls_files: TlsFiles) -> Iterator[HttpsServer]:
    with HttpsServer(tls_files) as server:
        yield server


def token() -> str:
    return uuid.uuid4().hex[:12]


def target(base_url: str) -> str:
    return base_url.split("//", 1)[1]


# --------------------------------------------------------------------------- the proxy


def test_plain_http_through_the_proxy_reaches_each_host(
    forward_proxy: ForwardProxy, loopback: LoopbackServer
) -> None:
    forward_proxy.clear()
    tag = token()
    with requests.Session() as session:
        session.trust_env = False
        for _ in range(2):  # one session, two hosts, twice: each request to its own host
            for base in loopback.base_urls:
                response = session.get(
                    f"{base}/page/{tag}", proxies={"http": forward_proxy.url}, timeout=TIMEOUT
                )
                assert response.status_code == 200
                assert f"<title>Page /page/{tag}</title>" in response.text
    records = loopback.records(contains=tag)
    assert sorted(r.host for r in records) == sorted(map(target, loopback.base_urls * 2))
    assert all("proxy.py" in r.headers.get("via", "") for r in records)
    seen = proxy_seen(forward_proxy)
    assert [(s["method"], s["target"]) for s in seen] == [
        ("GET", target(base)) for base in loopback.base_urls * 2
    ]
    assert all(s["upstream"] == s["target"] for s in seen)


def test_keep_alive_proxy_refuses_what_proxy_py_would_misroute(loopback: LoopbackServer) -> None:
    tag = token()
    with ForwardProxy(keep_alive=True) as proxy, requests.Session() as session:
        session.trust_env = False
        first, second = (
            session.get(f"{base}/page/{tag}", proxies={"http": proxy.url}, timeout=TIMEOUT)
            for base in loopback.base_urls
        )
        seen = proxy.seen()
    assert first.status_code == 200
    assert second.status_code == 502 and "proxy.py would send" in second.text
    assert [r.host for r in loopback.records(contains=tag)] == [target(loopback.base_urls[0])]
    assert [s["upstream"] for s in seen] == [target(loopback.base_urls[0])] * 2


def test_https_through_a_connect_tunnel(
    forward_proxy: ForwardProxy, https_server: HttpsServer, tls_files: TlsFiles
) -> None:
    forward_proxy.clear()
    path = f"/tls/{token()}"
    response = requests.get(
        https_server.url + path,
        proxies={"https": forward_proxy.url},
        verify=tls_files.ca_path,
        timeout=TIMEOUT,
    )
    assert response.status_code == 200 and response.text == f"ok {path}\n"
    assert [r["path"] for r in https_server.requests if r["path"] == path] == [path]
    assert [(s["method"], s["target"]) for s in proxy_seen(forward_proxy)] == [
        ("CONNECT", f"127.0.0.1:{https_server.port}")
    ]


@pytest.mark.parametrize(
    ("variable", "value"),
    [("NO_PROXY", "127.0.0.1"), ("no_proxy", "localhost,127.0.0.0/8")],
)
def test_no_proxy_from_the_environment_is_honoured(
    forward_proxy: ForwardProxy,
    loopback: LoopbackServer,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
) -> None:
    forward_proxy.clear()
    tag = token()
    monkeypatch.setenv("HTTP_PROXY", forward_proxy.url)
    with requests.Session() as session:  # trust_env: proxies come from the environment
        assert session.get(f"{loopback.base_urls[0]}/page/{tag}", timeout=TIMEOUT).ok
        assert len(proxy_seen(forward_proxy)) == 1
        monkeypatch.setenv(variable, value)
        assert session.get(f"{loopback.base_urls[1]}/page/{tag}", timeout=TIMEOUT).ok
    assert len(proxy_seen(forward_proxy)) == 1  # the second went direct
    via = {r.host: r.headers.get("via") for r in loopback.records(contains=tag)}
    assert via[target(loopback.base_urls[0])] is not None
    assert via[target(loopback.base_urls[1])] is None


def test_proxy_resolves_mapped_names_for_https(
    https_server: HttpsServer, tls_files: TlsFiles
) -> None:
    # Through a proxy the client never resolves the target: the proxy's child needs the names.
    path = f"/idna/{token()}"
    with ForwardProxy(hosts={"bücher.test": "127.0.0.1"}) as proxy:
        response = requests.get(
            f"https://bücher.test:{https_server.port}{path}",
            proxies={"https": proxy.url},
            verify=tls_files.ca_path,
            timeout=TIMEOUT,
        )
        seen = proxy.seen()
    assert response.status_code == 200 and response.text == f"ok {path}\n"
    assert [(s["method"], s["target"]) for s in seen] == [
        ("CONNECT", f"xn--bcher-kva.test:{https_server.port}")
    ]
    [request] = [r for r in https_server.requests if r["path"] == path]
    assert request["host"] == f"xn--bcher-kva.test:{https_server.port}"


# --------------------------------------------------------------------------- certificates


@pytest.mark.parametrize("name", ["localhost", "xn--bcher-kva.test", "bücher.test"])
def test_certificate_is_valid_for_mapped_names(
    name: str, https_server: HttpsServer, tls_files: TlsFiles, hosts_mapping: HostsMapping
) -> None:
    hosts_mapping.add(name, "127.0.0.1")
    path = f"/name/{token()}"
    response = requests.get(
        f"https://{name}:{https_server.port}{path}", verify=tls_files.ca_path, timeout=TIMEOUT
    )
    assert response.text == f"ok {path}\n"


def test_wildcard_right_under_the_tld_never_matches(
    https_server: HttpsServer, tls_files: TlsFiles, hosts_mapping: HostsMapping
) -> None:
    # OpenSSL ignores "*.test"; "*.urlfleet.test" is in the certificate for made-up names.
    hosts_mapping.add("www.test", "127.0.0.1")
    hosts_mapping.add("www.urlfleet.test", "127.0.0.1")
    with pytest.raises(requests.exceptions.SSLError, match="match"):
        requests.get(f"https://www.test:{https_server.port}/", verify=tls_files.ca_path, timeout=9)
    url = f"https://www.urlfleet.test:{https_server.port}/made-up"
    assert requests.get(url, verify=tls_files.ca_path, timeout=TIMEOUT).text == "ok /made-up\n"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.3",
        "127.0.0.20",
        "::1",  # .ci/run gives the loopback interface ::1 where the machine turned IPv6 off
    ],
)
def test_certificate_covers_the_loopback_addresses(address: str, tls_files: TlsFiles) -> None:
    with HttpsServer(tls_files, address=address) as server:
        response = requests.get(server.url + "/ip", verify=tls_files.ca_path, timeout=TIMEOUT)
    assert response.text == "ok /ip\n"


def test_untrusted_certificate_is_refused(https_server: HttpsServer) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(https_server.url + "/untrusted", timeout=TIMEOUT)  # the system CAs


# --------------------------------------------------------------------------- host names


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("bücher.test", "xn--bcher-kva.test"),
        ("BÜCHER.Test.", "xn--bcher-kva.test"),
        ("XN--BCHER-KVA.test.", "xn--bcher-kva.test"),
        (b"Example.TEST", "example.test"),
    ],
)
def test_names_are_normalized(name: str | bytes, key: str) -> None:
    assert normalize_host(name) == key


def test_mapping_accepts_only_loopback_addresses() -> None:
    with pytest.raises(ValueError, match="loopback"):
        HostsMapping({"outside.test": "10.0.0.1"})
    with pytest.raises(ValueError, match="IP literal"):
        HostsMapping({"named.test": "localhost"})


def test_hosts_mapping_in_process(
    hosts_mapping: HostsMapping, mapped_server: LoopbackServer
) -> None:
    hosts_mapping.add("bücher.test", "127.0.0.2")
    port = mapped_server.base_urls[0].rsplit(":", 1)[1]
    tag = token()
    for url in (f"http://bücher.test:{port}/page/{tag}/u", f"http://XN--BCHER-KVA.test.:{port}/"):
        response = requests.get(url + f"?{tag}", timeout=TIMEOUT)
        assert response.status_code == 200
    records = mapped_server.records(contains=tag)
    assert [r.host for r in records] == [f"127.0.0.2:{port}"] * 2
    # Only mapped names change; the rest resolves as before, and families are honoured.
    assert socket.getaddrinfo("localhost", 80, socket.AF_INET)[0][4][0] == "127.0.0.1"
    assert socket.getaddrinfo("bücher.test", port, socket.AF_INET)[0][4] == ("127.0.0.2", int(port))
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("bücher.test", port, socket.AF_INET6)


def test_hosts_mapping_in_a_child_process(mapped_server: LoopbackServer) -> None:
    port = mapped_server.base_urls[0].rsplit(":", 1)[1]
    path = f"/page/{token()}"
    code = (
        "import requests; "
        f"print(requests.get('http://bücher.test:{port}{path}', timeout={TIMEOUT}).status_code)"
    )
    done = python_child(code, child_env({"bücher.test": "127.0.0.2"}))
    assert (done.returncode, done.stdout.strip()) == (0, "200"), done.stderr
    assert [r.host for r in mapped_server.records(contains=path)] == [f"127.0.0.2:{port}"]


def python_child(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip


def test_child_sitecustomize_is_inert_without_the_variable_and_loud_on_bad_json() -> None:
    code = "import socket; print(socket.getaddrinfo.__module__)"
    env = child_env({"bücher.test": "127.0.0.2"})
    assert python_child(code, env).stdout.strip() == "_urlfleet_hostmap"
    del env["URLFLEET_TEST_HOSTS"]
    assert python_child(code, env).stdout.strip() == "socket"
    env["URLFLEET_TEST_HOSTS"] = "not json"
    assert "URLFLEET_TEST_HOSTS is not valid JSON" in python_child("pass", env).stderr
