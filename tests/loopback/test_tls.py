"""HTTPS on the loopback server: certificates from a throwaway trustme CA."""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import trustme

from urlfleet.loopback import LoopbackProcess, LoopbackServer, ServerSpec, main
from urlfleet.loopback.process import _pinned_context, _request_json

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Pems:
    ca: str  # the CA certificate a client trusts
    cert: str  # the server's certificate chain
    key: str  # its private key
    both: str  # key and chain in one file


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> Pems:
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost", "*.test")
    paths = Pems(*(str(folder / n) for n in ("ca.pem", "cert.pem", "key.pem", "both.pem")))
    ca.cert_pem.write_to_path(paths.ca)
    for blob in cert.cert_chain_pems:
        blob.write_to_path(paths.cert, append=True)
    cert.private_key_pem.write_to_path(paths.key)
    cert.private_key_and_cert_chain_pem.write_to_path(paths.both)
    return paths


@pytest.fixture(scope="module")
def server(pems: Pems) -> Iterator[LoopbackServer]:
    spec = ServerSpec(hosts=2, latency=0, tls_cert=pems.cert, tls_key=pems.key)
    with LoopbackServer(spec) as running:
        yield running


def test_https_urls_and_a_request_verified_against_the_ca(
    server: LoopbackServer, pems: Pems
) -> None:
    assert all(url.startswith("https://127.0.0.1:") for url in server.base_urls)
    with requests.Session() as session:
        for i in range(3):  # keep-alive works over TLS too
            response = session.get(f"{server.base_urls[1]}/tls/ok/{i}", verify=pems.ca)
            assert response.status_code == 200 and "<title>Page /tls/ok/" in response.text
    records = server.records("/tls/ok/")
    assert [r.status for r in records] == [200] * 3
    assert records[0].host == urlsplit(server.base_urls[1]).netloc


def test_without_the_ca_verification_fails(server: LoopbackServer) -> None:
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        requests.get(server.base_urls[0] + "/tls/untrusted", timeout=5)
    assert server.records("/tls/untrusted") == []  # refused before any request was sent


def test_plain_http_to_a_tls_host_gets_no_response(server: LoopbackServer) -> None:
    parts = urlsplit(server.base_urls[0])
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        connection.request("GET", "/tls/plain")
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
            connection.getresponse()
    finally:
        connection.close()
    assert server.records("/tls/plain") == []


def test_cross_host_redirect_keeps_https(server: LoopbackServer, pems: Pems) -> None:
    port = urlsplit(server.base_urls[1]).port
    response = requests.get(f"{server.base_urls[0]}/to/{port}/tls/hop", verify=pems.ca)
    assert response.status_code == 200
    assert response.url == f"{server.base_urls[1]}/tls/hop"
    assert response.history[0].headers["Location"] == response.url


def test_key_and_chain_in_one_file(pems: Pems) -> None:
    spec = ServerSpec(hosts=1, latency=0, tls_cert=pems.both, tls_key=pems.both)
    with LoopbackServer(spec) as srv:
        assert requests.get(srv.base_urls[0] + "/one-file", verify=pems.ca).status_code == 200


def test_tls_spec_validation(pems: Pems) -> None:
    with pytest.raises(ValueError, match="go together"):
        ServerSpec(tls_cert=pems.cert)
    with pytest.raises(ValueError, match="go together"):
        ServerSpec(tls_key=pems.key)
    with pytest.raises(ValueError, match="tls_cert"):
        ServerSpec(tls_cert="", tls_key=pems.key)
    assert ServerSpec().scheme == "http"
    assert ServerSpec(tls_cert=pems.cert, tls_key=pems.key).scheme == "https"


def test_unreadable_certificate_fails_to_start(tmp_path: Path, pems: Pems) -> None:
    missing = str(tmp_path / "missing.pem")
    bad = LoopbackServer(ServerSpec(hosts=1, tls_cert=missing, tls_key=pems.key))
    with pytest.raises(RuntimeError, match="failed to start"):
        bad.start()
    bad.stop()
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    process = LoopbackProcess(ServerSpec(hosts=1, tls_cert=str(garbage), tls_key=str(garbage)))
    with pytest.raises(RuntimeError, match="did not start"):
        process.start()
    process.stop()


def test_main_needs_both_tls_flags(capsys: pytest.CaptureFixture[str], pems: Pems) -> None:
    with pytest.raises(SystemExit):
        main(["--tls-cert", pems.cert])
    assert "go together" in capsys.readouterr().err


def test_loopback_process_with_tls(pems: Pems) -> None:
    spec = ServerSpec(hosts=2, latency=0, tls_cert=pems.cert, tls_key=pems.key)
    with LoopbackProcess(spec) as server, requests.Session() as session:
        assert all(url.startswith("https://127.0.0.1:") for url in server.base_urls)
        for url in server.base_urls:
            assert session.get(url + "/proc-tls/x", verify=pems.ca).status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            session.get(server.base_urls[0] + "/proc-tls/untrusted")
        # The control routes (records, stats, clear) go over TLS as well.
        records = server.records("/proc-tls/")
        assert sorted(r.host for r in records) == sorted(
            urlsplit(u).netloc for u in server.base_urls
        )
        assert server.stats()["requests"] >= 2 and server.cpu_seconds() > 0
        server.clear()
        assert server.records() == []


def test_pinned_control_client_refuses_another_certificate(tmp_path: Path, pems: Pems) -> None:
    """The control client trusts the child's own certificate, not any that names 127.0.0.1."""
    other = trustme.CA().issue_cert("127.0.0.1")
    other_path = str(tmp_path / "other.pem")
    other.private_key_and_cert_chain_pem.write_to_path(other_path)
    spec = ServerSpec(hosts=1, latency=0, tls_cert=pems.cert, tls_key=pems.key)
    with LoopbackProcess(spec) as server:
        stats = "/__urlfleet__/stats"
        with pytest.raises(ssl.SSLCertVerificationError):
            _request_json(server.base_urls[0], stats, _pinned_context(other_path))
        assert _request_json(server.base_urls[0], stats, _pinned_context(pems.cert))["pid"]
