"""Request shaping end to end: the real CLI against the loopback server, checked by what the
server (or the real forward proxy) received."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import urlfleet as urlfleet_lib
from tests.realparts import ForwardProxy
from urlfleet.loopback import LoopbackProcess, ServerSpec

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hosts() -> Iterator[LoopbackProcess]:
    """Two hosts on two addresses: cookies keep to host names, not ports, so two ports of
    127.0.0.1 would be one host to a cookie jar."""
    with LoopbackProcess(ServerSpec(addresses=("127.0.0.1", "127.0.0.2"), latency=0.01)) as p:
        yield p


def urlfleet(urls: list[str], *options: str) -> tuple[int, list[dict[str, Any]], str]:
    done = subprocess.run(
        [sys.executable, "-m", "urlfleet", "fetch", "-", "--no-progress", *options],
        input="\n".join(urls) + "\n", capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()], done.stderr


def tag() -> str:
    return uuid.uuid4().hex[:10]


def test_method_headers_and_body_reach_the_server(hosts: LoopbackProcess) -> None:
    t = tag()
    options = ["-X", "PUT", "--data", "a=1&b=é", "-H", "X-Token: 42"]
    code, records, err = urlfleet([f"{hosts.base_urls[0]}/echo/{t}"], *options)
    assert code == 0, err
    (seen,) = hosts.records(t)
    assert (seen.method, seen.body) == ("PUT", "a=1&b=é".encode().decode("latin-1"))
    assert seen.headers["x-token"] == "42" and seen.headers["content-length"] == "8"
    assert records[0]["ok"] and records[0]["status"] == 200


def test_data_from_a_file_is_posted_as_its_bytes(hosts: LoopbackProcess, tmp_path: Path) -> None:
    t, body = tag(), bytes(range(256)) + b"\r\nend\n"
    (tmp_path / "body.bin").write_bytes(body)
    code, _, err = urlfleet([f"{hosts.base_urls[0]}/echo/{t}"], "--data", f"@{tmp_path}/body.bin")
    assert code == 0, err
    (seen,) = hosts.records(t)
    assert seen.method == "POST" and seen.body.encode("latin-1") == body  # curl's rule


def test_cookies_given_are_sent_together(hosts: LoopbackProcess) -> None:
    t = tag()
    code, _, err = urlfleet([f"{hosts.base_urls[0]}/echo/{t}"], "--cookie", "a=1; b=2",
                            "--cookie", "c=3")  # fmt: skip
    assert code == 0, err
    (seen,) = hosts.records(t)
    assert sorted(seen.headers["cookie"].split("; ")) == ["a=1", "b=2", "c=3"]


def test_head_and_its_get_for_a_server_that_refuses_head(hosts: LoopbackProcess) -> None:
    t, base = tag(), hosts.base_urls[0]
    code, records, err = urlfleet([f"{base}/page/{t}", f"{base}/no-head/{t}"], "--head")
    assert code == 0, err
    seen = sorted((r.path, r.method, r.status) for r in hosts.records(t))
    assert seen == [(f"/no-head/{t}", "GET", 200), (f"/no-head/{t}", "HEAD", 405),
                    (f"/page/{t}", "HEAD", 200)]  # fmt: skip
    by_url = {r["url"]: r for r in records}
    assert by_url[f"{base}/no-head/{t}"]["status"] == 200 and by_url[f"{base}/no-head/{t}"]["ok"]
    assert by_url[f"{base}/page/{t}"]["bytes"] == 0  # a HEAD: no body


def test_ok_status_makes_a_404_ok_and_a_429_final(hosts: LoopbackProcess) -> None:
    t, base = tag(), hosts.base_urls[0]
    urls = [f"{base}/status/404/{t}", f"{base}/retry-after/0/5/{t}"]
    code, records, err = urlfleet(urls, "--ok-status", "200-299,404,429")
    assert code == 0, err
    assert all(r["ok"] and r["error"] is None for r in records)
    assert sorted(r["status"] for r in records) == [404, 429]
    assert len(hosts.records(f"/retry-after/0/5/{t}")) == 1  # not retried
    code, records, _ = urlfleet([f"{base}/status/404/{t}-plain"])
    assert code == 1 and records[0]["error"] == "HTTP 404"  # the default: 2xx only


def test_accept_type_skips_a_page_after_its_headers(hosts: LoopbackProcess, tmp_path: Path) -> None:
    t, base, saved = tag(), hosts.base_urls[0], tmp_path / "saved"
    urls = [f"{base}/type/application/pdf?{t}", f"{base}/page/{t}"]
    code, records, err = urlfleet(urls, "--accept-type", "text/*", "--save-dir", str(saved))
    assert code == 1, err
    by_url = {r["url"]: r for r in records}
    skipped = by_url[urls[0]]
    assert (skipped["ok"], skipped["status"], skipped["error_kind"]) == (False, 200, "skipped")
    assert skipped["error"] == "content type application/pdf not accepted"
    assert skipped["bytes"] == 0 and skipped["saved_to"] is None
    assert by_url[urls[1]]["ok"] and by_url[urls[1]]["saved_to"]
    files = [p for p in saved.rglob("*") if p.is_file()]
    assert [str(p) for p in files] == [by_url[urls[1]]["saved_to"]]  # the pdf: nothing


def test_a_proxy_carries_the_page(hosts: LoopbackProcess, forward_proxy: ForwardProxy) -> None:
    forward_proxy.clear()
    t, base = tag(), hosts.base_urls[0]
    code, records, err = urlfleet([f"{base}/page/{t}"], "--proxy", forward_proxy.url)
    assert code == 0, err
    assert records[0]["ok"] and f"Page /page/{t}" not in err
    through = [s for s in forward_proxy.seen() if t in s["path"]]
    assert len(through) == 1 and through[0]["method"] == "GET"
    assert len(hosts.records(t)) == 1  # and it reached the host, once


def test_one_jar_for_every_thread_kept_to_its_host(hosts: LoopbackProcess, tmp_path: Path) -> None:
    t, (first, other) = tag(), hosts.base_urls
    jar = tmp_path / "cookies.txt"
    urls = [f"{first}/set-cookie/sid/{t}?path=/", *(f"{first}/page/{t}/{i}" for i in range(40)),
            *(f"{other}/page/{t}/{i}" for i in range(10))]  # fmt: skip
    # --per-host 1: the host's first answer (setting the cookie) comes before its others,
    # which eight threads then share out.
    code, records, err = urlfleet(urls, "-j", "8", "--per-host", "1", "--cookie-jar", str(jar))
    assert code == 0 and len(records) == 51, err
    seen = hosts.records(f"/{t}")
    (setter,) = [r for r in seen if r.path.startswith("/set-cookie/")]
    later = [r for r in seen if r.host == setter.host and r is not setter]
    assert len(later) == 40 and all(r.arrived >= setter.finished for r in later)
    assert all(r.headers.get("cookie") == f"sid={t}" for r in later)
    elsewhere = [r for r in seen if r.host != setter.host]
    assert len(elsewhere) == 10 and not any("cookie" in r.headers for r in elsewhere)
    assert f"\tsid\t{t}" in jar.read_text()  # a session cookie, written at the end
    # A second run starts from the jar: the cookie goes to its host only.
    code, _, err = urlfleet([f"{first}/echo/{t}-again", f"{other}/echo/{t}-again"],
                            "--cookie-jar", str(jar))  # fmt: skip
    assert code == 0, err
    cookies = {r.host: r.headers.get("cookie") for r in hosts.records(f"{t}-again")}
    assert cookies == {setter.host: f"sid={t}", elsewhere[0].host: None}


def test_a_jar_is_written_when_urls_fail(hosts: LoopbackProcess, tmp_path: Path) -> None:
    t, base, jar = tag(), hosts.base_urls[0], tmp_path / "jar.txt"
    urls = [f"{base}/set-cookie/k/{t}?path=/&max_age=3600", f"{base}/status/500/{t}"]
    code, _, err = urlfleet(urls, "--per-host", "1", "--retries", "0", "--cookie-jar", str(jar))
    assert code == 1, err
    assert f"\tk\t{t}" in jar.read_text()


def test_the_library_takes_the_same_names(hosts: LoopbackProcess, tmp_path: Path) -> None:
    t, (first, other) = tag(), hosts.base_urls
    jar = tmp_path / "lib-cookies.txt"
    urlfleet_lib.fetch_all([f"{first}/set-cookie/lib/{t}?path=/"], cookie_jar=jar)
    results = urlfleet_lib.fetch_all(
        [f"{first}/echo/{t}-lib", f"{other}/type/image/png?{t}-lib"],
        cookie_jar=jar, method="PATCH", data=b"body", accept_type=["application/json"],
        ok_status="200-299",
    )  # fmt: skip
    echo, image = results
    assert echo.ok and json.loads(echo.content)["body"] == "body"
    assert (image.ok, image.error_kind) == (False, "skipped")
    (seen,) = [r for r in hosts.records(f"{t}-lib") if r.path.startswith("/echo/")]
    assert (seen.method, seen.headers.get("cookie")) == ("PATCH", f"lib={t}")


def test_robots_txt_is_always_asked_with_a_plain_get(hosts: LoopbackProcess) -> None:
    t, base = tag(), hosts.base_urls[1]
    hosts.clear()  # robots.txt records carry no tag: only this test's may be there
    code, _, err = urlfleet([f"{base}/echo/{t}"], "--robots", "-X", "PUT", "--data", "x")
    assert code == 0, err
    code, _, err = urlfleet([f"{base}/page/{t}"], "--robots", "--head")
    assert code == 0, err
    robots = hosts.records("/robots.txt")
    assert len(robots) == 2 and all((r.method, r.body) == ("GET", "") for r in robots)
    assert sorted(r.method for r in hosts.records(t)) == ["HEAD", "PUT"]


def test_a_jar_is_written_when_an_interrupt_abandons_requests(
    hosts: LoopbackProcess, tmp_path: Path
) -> None:
    t, base = tag(), hosts.base_urls[0]
    jar, out = tmp_path / "jar.txt", tmp_path / "out.jsonl"
    listed = tmp_path / "urls.txt"
    # The cookie first (--per-host 1), then a request that never gets an answer.
    listed.write_text(f"{base}/set-cookie/k/{t}?path=/\n{base}/black-hole/{t}\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "urlfleet", "fetch", str(listed), "-o", str(out), "--per-host",
         "1", "--grace", "0.2", "--cookie-jar", str(jar), "--no-progress"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    # The cookie's record is written once its lease is released: the black hole's request,
    # next for the host, is then taken at once, and never answered.
    while not out.exists() or "set-cookie" not in out.read_text():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "requests still in flight were abandoned" in stderr
    assert f"\tk\t{t}" in jar.read_text()
