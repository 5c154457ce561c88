"""A host's next TLS connection resumes its last session, for each name of one server.

The loopback server closes a connection idle for 0.2 s, and the run waits 0.4 s between a
host's requests (``delay``), so almost every request opens a new connection. The server counts the
handshakes that resumed a session (``tls_resumed`` in its stats; its own control requests
never resume) and numbers the connections in its records.
"""

from __future__ import annotations

import uuid

import pytest

import urlfleet
from tests.realparts import HostsMapping, TlsFiles, make_tls_files
from urlfleet.loopback import LoopbackProcess, ServerSpec

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def _server(tls: TlsFiles) -> LoopbackProcess:
    spec = ServerSpec(hosts=1, latency=0.0, idle_timeout=0.2, tls_cert=tls.cert_path,
                      tls_key=tls.key_path)  # fmt: skip
    return LoopbackProcess(spec)


def test_a_hosts_next_connection_resumes_its_session(tls: TlsFiles) -> None:
    with _server(tls) as server:
        token = uuid.uuid4().hex[:8]
        urls = [f"{server.base_urls[0]}/page/{token}/{i}" for i in range(4)]
        results = list(urlfleet.fetch(urls, jobs=2, per_host=1, delay=0.4, ca_bundle=tls.ca_path))
        connections = len({r.connection for r in server.records()})  # robots.txt's too
        resumed = server.stats()["tls_resumed"]
    assert all(r.ok for r in results)
    assert connections >= 4  # the server closed each page's connection before the next
    assert resumed == connections - 1  # all but the first resumed


def test_each_name_resumes_its_own_session(tls: TlsFiles, hosts_mapping: HostsMapping) -> None:
    with _server(tls) as server:
        port = server.base_urls[0].rsplit(":", 1)[1]
        names = ["a.urlfleet.test", "b.urlfleet.test"]
        for name in names:
            hosts_mapping.add(name, "127.0.0.1")  # one server, one address, two names
        token = uuid.uuid4().hex[:8]
        urls = [f"https://{n}:{port}/page/{token}/{i}" for i in range(3) for n in names]
        results = list(urlfleet.fetch(urls, jobs=2, per_host=1, delay=0.4, ca_bundle=tls.ca_path))
        connections = len({r.connection for r in server.records()})
        resumed = server.stats()["tls_resumed"]
    assert all(r.ok for r in results), [r.error for r in results]
    assert connections >= 6
    # Each name's first connection is a full handshake, each later one resumes: a session
    # kept for one name serves that name's connections (OpenSSL itself would not resume
    # another name's session on it either).
    assert resumed == connections - 2
