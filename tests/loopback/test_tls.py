"""HTTPS on the loopback server: certificates from a throwaway trustme CA."""

from __future__ import annotations

import datetime
import http.client
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import trustme

from urlfleet.loopback import LoopbackProcess, LoopbackServer, ServerSpec, main
from urlfleet.loopback.cli import _build_parser, _parse_host_tls, _spec_to_argv
from urlfleet.loopback.process import _pinned_context, _request_json

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Pems:
    ca: str  # the CA certificate a client trusts
    ca_key: str  # its private key, to issue more certificates
    cert: str  # the server's certificate chain
    key: str  # its private key
    both: str  # key and chain in one file


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> Pems:
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost", "*.test")
    names = ("ca.pem", "ca-key.pem", "cert.pem", "key.pem", "both.pem")
    paths = Pems(*(str(folder / n) for n in names))
    ca.cert_pem.write_to_path(paths.ca)
    ca.private_key_pem.write_to_path(paths.ca_key)
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


# --------------------------------------------------------------------------- per-host certificates


@dataclass(frozen=True)
class BadPems:
    expired: tuple[str, str]  # (cert, key) that expired yesterday
    wrong_name: tuple[str, str]  # (cert, key) for wrong.example only


@pytest.fixture(scope="module")
def bad_pems(tmp_path_factory: pytest.TempPathFactory, pems: Pems) -> BadPems:
    """Certificates from the same CA as ``pems``: trusted, but not for these hosts."""
    folder = tmp_path_factory.mktemp("bad-tls")
    ca = trustme.CA.from_pem(Path(pems.ca).read_bytes(), Path(pems.ca_key).read_bytes())
    now = datetime.datetime.now(datetime.timezone.utc)
    issued = {
        "expired": ca.issue_cert(
            "127.0.0.1",
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        ),
        "wrong_name": ca.issue_cert("wrong.example"),
    }
    paths: dict[str, tuple[str, str]] = {}
    for name, cert in issued.items():
        paths[name] = (str(folder / f"{name}-cert.pem"), str(folder / f"{name}-key.pem"))
        for blob in cert.cert_chain_pems:
            blob.write_to_path(paths[name][0], append=True)
        cert.private_key_pem.write_to_path(paths[name][1])
    return BadPems(**paths)


def bad_spec(pems: Pems, bad: BadPems, expired_host: int = 1) -> ServerSpec:
    """Three hosts: ``expired_host`` serves the expired certificate, host 2 the wrong name."""
    return ServerSpec(
        hosts=3,
        latency=0,
        tls_cert=pems.cert,
        tls_key=pems.key,
        host_tls=((expired_host, *bad.expired), (2, *bad.wrong_name)),
    )


def handshake(url: str, ca: str) -> str:
    """The peer certificate's subjectAltName, after a handshake verified against ``ca``."""
    parts = urlsplit(url)
    context = ssl.create_default_context(cafile=ca)
    with (
        socket.create_connection((parts.hostname or "", parts.port or 443), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname=parts.hostname) as tls,
    ):
        certificate = tls.getpeercert()
    return str(certificate["subjectAltName"])


def test_expired_and_wrong_name_certificates_fail_while_others_verify(
    pems: Pems, bad_pems: BadPems
) -> None:
    with LoopbackServer(bad_spec(pems, bad_pems)) as srv, requests.Session() as session:
        good, expired, wrong = srv.base_urls
        assert "127.0.0.1" in handshake(good, pems.ca)
        assert session.get(good + "/host-tls/good", verify=pems.ca).status_code == 200
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate has expired"):
            handshake(expired, pems.ca)
        with pytest.raises(requests.exceptions.SSLError, match="certificate has expired"):
            session.get(expired + "/host-tls/expired", verify=pems.ca)
        with pytest.raises(ssl.SSLCertVerificationError, match="address mismatch"):
            handshake(wrong, pems.ca)
        with pytest.raises(requests.exceptions.SSLError, match="address mismatch"):
            session.get(wrong + "/host-tls/wrong", verify=pems.ca)
        # The certificates themselves are the CA's: without the name check, wrong.example
        # passes, so it is the name that failed, not the trust.
        unnamed = ssl.create_default_context(cafile=pems.ca)
        unnamed.check_hostname = False
        parts = urlsplit(wrong)
        connection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=5, context=unnamed
        )
        try:
            connection.request("GET", "/host-tls/unnamed")
            assert connection.getresponse().status == 200
        finally:
            connection.close()
        assert [(r.host, r.path) for r in srv.records("/host-tls/")] == [
            (urlsplit(good).netloc, "/host-tls/good"),
            (urlsplit(wrong).netloc, "/host-tls/unnamed"),
        ]


def test_loopback_process_passes_host_tls_and_controls_through_a_good_host(
    pems: Pems, bad_pems: BadPems
) -> None:
    spec = bad_spec(pems, bad_pems, expired_host=0)
    assert spec.control_index == 1
    with LoopbackProcess(spec) as server, requests.Session() as session:
        with pytest.raises(requests.exceptions.SSLError, match="certificate has expired"):
            session.get(server.base_urls[0] + "/proc-host-tls/expired", verify=pems.ca)
        with pytest.raises(requests.exceptions.SSLError, match="address mismatch"):
            session.get(server.base_urls[2] + "/proc-host-tls/wrong", verify=pems.ca)
        assert session.get(server.base_urls[1] + "/proc-host-tls/ok", verify=pems.ca).ok
        assert [r.path for r in server.records("/proc-host-tls/")] == ["/proc-host-tls/ok"]


def test_host_tls_argv_round_trip_and_validation(pems: Pems, bad_pems: BadPems) -> None:
    spec = bad_spec(pems, bad_pems)
    argv = _spec_to_argv(spec)
    assert f"--host-tls=1:{bad_pems.expired[0]}:{bad_pems.expired[1]}" in argv
    parsed = _build_parser().parse_args(argv)
    assert tuple(_parse_host_tls(t) for t in parsed.host_tls) == spec.host_tls
    assert _parse_host_tls("0:C:/certs/a.pem:key.pem") == (0, "C:/certs/a.pem", "key.pem")
    for text in ("x:cert:key", "0:cert", "0::key", "0:cert:"):
        with pytest.raises(ValueError, match="INDEX:CERT:KEY"):
            _parse_host_tls(text)
    assert spec.tls_for(0) == (pems.cert, pems.key)
    assert spec.tls_for(1) == bad_pems.expired and spec.tls_for(2) == bad_pems.wrong_name
    assert ServerSpec(hosts=1).tls_for(0) is None
    assert ServerSpec(hosts=2, host_tls=[[0, "c", "k"]], tls_cert="c", tls_key="k").host_tls == (
        (0, "c", "k"),
    )
    with pytest.raises(ValueError, match="needs tls_cert"):
        ServerSpec(hosts=2, host_tls=((0, "c", "k"),))
    tls = {"tls_cert": pems.cert, "tls_key": pems.key}
    with pytest.raises(ValueError, match="no host with index 2"):
        ServerSpec(hosts=2, host_tls=((2, "c", "k"),), **tls)
    with pytest.raises(ValueError, match="two entries for host 0"):
        ServerSpec(hosts=2, host_tls=((0, "c", "k"), (0, "d", "e")), **tls)
    with pytest.raises(ValueError, match="PEM file path"):
        ServerSpec(hosts=2, host_tls=((0, "", "k"),), **tls)
    with pytest.raises(ValueError, match="colon"):
        _spec_to_argv(ServerSpec(hosts=1, host_tls=((0, "c", "C:/k.pem"),), **tls))
