"""Hostile servers, through the CLI as a user would: nothing hangs, nothing leaks, every URL
gets a record, and the record says in plain words which limit cut it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import urlfleet
from tests.realparts import ForwardProxy, TlsFiles, make_tls_files
from urlfleet.fetching.failures import ERROR_KINDS
from urlfleet.loopback import LoopbackProcess, ServerSpec

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hostile() -> Iterator[LoopbackProcess]:
    with LoopbackProcess(ServerSpec(hosts=2, latency=0.0)) as process:
        yield process


@pytest.fixture
def token() -> str:
    return uuid.uuid4().hex[:10]


def fetch_cli(
    tmp_path: Path, urls: list[str], *options: str
) -> tuple[int, list[dict[str, Any]], str]:
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(urls) + "\n")
    out = tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "urlfleet", "fetch", str(listing), "-o", str(out),
               "--no-progress", *options]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    records = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return done.returncode, records, done.stderr


def peak_rss_mb(
    tmp_path: Path, urls: list[str], *options: str
) -> tuple[float, list[dict[str, Any]]]:
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(urls) + "\n")
    out = tmp_path / "out.jsonl"
    code = (
        "import resource, sys; from urlfleet.cli import main; code = main(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); "
        "sys.exit(code)"
    )
    command = [sys.executable, "-c", code, "fetch", str(listing), "-o", str(out), "--no-progress",
               *options]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    rss_kb = float(done.stderr.strip().splitlines()[-1])
    return rss_kb / 1024, [json.loads(line) for line in out.read_text().splitlines()]


def test_a_gzip_bomb_behind_a_302_costs_no_memory(
    hostile: LoopbackProcess, tmp_path: Path, token: str
) -> None:
    base = hostile.base_urls[0]
    bombs = [
        f"{base}/redirect-body/gzip/{1 << 30}/{token}/gz",  # inflates to 1 GiB
        f"{base}/redirect-body/big/{50 << 20}/{token}/big",
        f"{base}/redirect-body/endless/0/{token}/endless",
    ]
    rss, records = peak_rss_mb(tmp_path, bombs, "--max-bytes", "1000000", "--timeout", "10")
    assert rss < 300, f"peak RSS {rss:.0f} MB"
    assert len(records) == 3 and all(r["ok"] and r["redirects"] == 1 for r in records), records


def test_max_time_cuts_a_drip_and_says_so(
    hostile: LoopbackProcess, tmp_path: Path, token: str
) -> None:
    drip = f"{hostile.base_urls[0]}/drip/0.2/1000/{token}"  # a byte every 0.2 s: never a timeout
    page = f"{hostile.base_urls[1]}/page/{token}"
    started = time.monotonic()
    code, records, _ = fetch_cli(tmp_path, [drip, page], "--max-time", "1", "--retries", "0")
    took = time.monotonic() - started
    by_url = {r["url"]: r for r in records}
    assert code == 1 and took < 10
    assert by_url[page]["ok"]
    cut = by_url[drip]
    assert not cut["ok"] and cut["error_kind"] == "deadline" and cut["status"] == 200
    assert cut["error"] == "no complete response within --max-time 1 s"


def test_a_black_hole_ends_at_the_timeout(hostile: LoopbackProcess, token: str) -> None:
    (result,) = urlfleet.fetch_all([f"{hostile.base_urls[0]}/black-hole/{token}"], timeout=0.5,
                                   retries=0)  # fmt: skip
    assert not result.ok and result.error_kind == "timeout"
    assert result.error and result.error.startswith("ReadTimeout: ")


@pytest.mark.parametrize(
    ("route", "kind"),
    [
        ("chunked-truncated/100000", "body"),
        ("short-body/100000", "body"),
        ("many-headers/150", "http"),
        ("huge-header/100000", "http"),
        ("drop", "connect"),
        ("status/404", "http"),
    ],
)
def test_broken_answers_get_a_kind_and_a_plain_message(
    hostile: LoopbackProcess, token: str, route: str, kind: str
) -> None:
    (result,) = urlfleet.fetch_all([f"{hostile.base_urls[1]}/{route}/{token}"], retries=1,
                                   backoff=0.01)  # fmt: skip
    assert not result.ok and result.error_kind == kind, result.error
    assert result.error and "Connection(" not in result.error and "object at 0x" not in result.error
    if kind == "http" and route.startswith(("many", "huge")):
        assert result.attempts == 1  # a malformed answer is final at once


def test_good_streams_are_read_whole(hostile: LoopbackProcess, token: str) -> None:
    base = hostile.base_urls[0]
    results = urlfleet.fetch_all([f"{base}/chunked/100000/{token}", f"{base}/http10/5000/{token}"])
    assert [(r.ok, r.bytes) for r in results] == [(True, 100000), (True, 5000)]


def test_every_kind_in_a_record_is_in_the_vocabulary(hostile: LoopbackProcess, token: str) -> None:
    urls = [f"{hostile.base_urls[0]}/{route}/{token}" for route in
            ("status/500", "drop", "short-body/10", "page")] + ["http://no-such-host.invalid/",
            "ftp://example.com/x"]  # fmt: skip
    results = urlfleet.fetch_all(urls, retries=0)
    assert all((r.error_kind is None) == r.ok for r in results)
    assert {r.error_kind for r in results} - {None} <= set(ERROR_KINDS)
    assert {r.error_kind for r in results} >= {"http", "connect", "body", "dns", "input", None}


# -- certificates ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_certificates(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LoopbackProcess, TlsFiles]]:
    import datetime

    import trustme

    folder = tmp_path_factory.mktemp("bad-tls")
    good = make_tls_files(folder / "good")
    ca = trustme.CA()
    (folder / "ca.pem").write_bytes(ca.cert_pem.bytes())
    wrong = ca.issue_cert("wrong.example")
    utc = datetime.timezone.utc
    expired = ca.issue_cert(
        "127.0.0.1",
        not_before=datetime.datetime(2019, 1, 1, tzinfo=utc),
        not_after=datetime.datetime(2020, 1, 1, tzinfo=utc),
    )
    files = []
    for name, cert in (("wrong", wrong), ("expired", expired), ("ok", ca.issue_cert("127.0.0.1"))):
        path = folder / f"{name}.pem"
        cert.private_key_and_cert_chain_pem.write_to_path(str(path))
        files.append(str(path))
    spec = ServerSpec(hosts=3, latency=0.0, tls_cert=good.cert_path, tls_key=good.key_path,
                      host_tls=tuple((i, path, path) for i, path in enumerate(files)))  # fmt: skip
    with LoopbackProcess(spec) as process:
        yield process, TlsFiles(str(folder / "ca.pem"), files[2], files[2])


def test_certificate_errors_are_final_and_ca_bundle_trusts_our_own(
    bad_certificates: tuple[LoopbackProcess, TlsFiles], tmp_path: Path, token: str
) -> None:
    server, tls = bad_certificates
    wrong, expired, ok = (f"{base}/page/{token}" for base in server.base_urls)
    code, records, stderr = fetch_cli(tmp_path, [wrong, expired, ok], "--ca-bundle", tls.ca_path,
                                      "--retries", "3")  # fmt: skip
    by_url = {r["url"]: r for r in records}
    assert code == 1 and by_url[ok]["ok"]
    for url, words in ((wrong, "IP address mismatch"), (expired, "certificate has expired")):
        record = by_url[url]
        assert record["error_kind"] == "tls" and record["attempts"] == 1, record
        assert words in record["error"]
    assert "Traceback" not in stderr


def test_insecure_warns_once(
    bad_certificates: tuple[LoopbackProcess, TlsFiles], tmp_path: Path, token: str
) -> None:
    server, _ = bad_certificates
    urls = [f"{base}/page/{token}/{i}" for base in server.base_urls for i in range(3)]
    code, records, stderr = fetch_cli(tmp_path, urls, "--insecure")
    assert code == 0 and len(records) == 9
    assert stderr.count("not verified") == 1 and "InsecureRequestWarning" not in stderr


def test_a_missing_ca_bundle_is_one_line(tmp_path: Path) -> None:
    code, records, stderr = fetch_cli(
        tmp_path, ["http://127.0.0.1:9/"], "--ca-bundle", str(tmp_path / "no.pem")
    )
    assert code == 2 and not records
    assert stderr.strip().splitlines() == [
        f"error: --ca-bundle {tmp_path / 'no.pem'}: No such file or directory"
    ]


# -- secrets -------------------------------------------------------------------------------


def test_a_token_read_from_a_file_works_and_is_never_echoed(
    hostile: LoopbackProcess, tmp_path: Path, token: str
) -> None:
    secret = "s3cr3t-" + token
    url = f"{hostile.base_urls[0]}/auth/{token}"
    code, records, stderr = fetch_cli(tmp_path, [url], "-H", f"Authorization: Bearer {secret}\n")
    assert code == 0 and records[0]["ok"]
    seen = hostile.records(f"/auth/{token}")
    assert seen[0].headers["authorization"] == f"Bearer {secret}"  # sent, trailing newline gone
    again = tmp_path / "again"
    again.mkdir()
    code, records, stderr = fetch_cli(again, [url], "-H", f"Authorization: Bearer {secret}\nX: y")
    assert code == 2 and not records and secret not in stderr
    assert "value holds a line break" in stderr


def test_secrets_do_not_follow_a_redirect_to_another_host(
    hostile: LoopbackProcess, tmp_path: Path, token: str
) -> None:
    origin, other = hostile.base_urls
    port = other.rsplit(":", 1)[1]
    url = f"{origin}/to/{port}/auth/{token}"  # 302 to the other host's /auth/...
    code, records, _ = fetch_cli(
        tmp_path, [url], "-H", "Authorization: Bearer one", "-H", "X-Api-Key: two",
        "-H", "X-Plain: three", "--secret-header", "X-Api-Key",
    )  # fmt: skip
    assert code == 0 and records[0]["redirects"] == 1
    (first,) = hostile.records(f"/to/{port}/auth/{token}")
    (second,) = [r for r in hostile.records(f"/auth/{token}") if r.path.startswith("/auth/")]
    assert first.headers.get("authorization") == "Bearer one"
    assert first.headers.get("x-api-key") == "two"
    assert "authorization" not in second.headers and "x-api-key" not in second.headers
    assert second.headers.get("x-plain") == "three"


def test_explicit_cookies_stay_with_the_hosts_of_the_list(
    hostile: LoopbackProcess, token: str
) -> None:
    origin, other = hostile.base_urls
    port = other.rsplit(":", 1)[1]
    urlfleet.fetch_all([f"{origin}/to/{port}/page/{token}/c"], cookies={"session": "abc"})
    (first,) = hostile.records(f"/to/{port}/page/{token}/c")
    (second,) = [r for r in hostile.records(f"/page/{token}/c") if r.path.startswith("/page/")]
    assert first.headers.get("cookie") == "session=abc"
    assert "cookie" not in second.headers


def test_proxy_authorization_reaches_the_proxy_only(
    hostile: LoopbackProcess, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = {"Proxy-Authorization": "Basic cHJveHk6cGFzcw=="}
    direct = urlfleet.fetch_all([f"{hostile.base_urls[0]}/page/{token}/direct"], headers=headers)
    assert direct[0].ok
    (seen,) = hostile.records(f"/page/{token}/direct")
    assert "proxy-authorization" not in seen.headers
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        proxied = urlfleet.fetch_all(
            [f"{hostile.base_urls[0]}/page/{token}/proxied"], headers=headers
        )
        assert proxied[0].ok
    (seen,) = hostile.records(f"/page/{token}/proxied")
    assert "proxy-authorization" not in seen.headers


def test_an_empty_header_on_the_command_line_leaves_it_out(
    hostile: LoopbackProcess, tmp_path: Path, token: str
) -> None:
    url = f"{hostile.base_urls[0]}/page/{token}/quiet"
    code, records, _ = fetch_cli(tmp_path, [url], "-H", "User-Agent:", "-H", "Accept:")
    assert code == 0 and records[0]["ok"]
    (seen,) = hostile.records(f"/page/{token}/quiet")
    assert "user-agent" not in seen.headers and "accept" not in seen.headers
