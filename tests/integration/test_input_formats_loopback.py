"""Rows and sitemaps as input, end to end against the loopback server: what each row or
sitemap entry said reaches the server and comes back in the record's meta, and sitemaps are
fetched as politely as any page (the server's own records say so)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import urlfleet
from tests.conftest import SERVER_SLACK
from urlfleet.loopback import LoopbackProcess, ServerSpec, host_loads

pytestmark = pytest.mark.integration


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "urlfleet", "fetch", "--no-progress", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def records_of(done: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.fixture
def token() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="module")
def hosts() -> Iterator[LoopbackProcess]:
    """Two hosts of their own, so a test's politeness figures are its own."""
    with LoopbackProcess(ServerSpec(hosts=2, latency=0.03)) as process:
        yield process


def test_jsonl_rows_send_their_headers_and_bring_back_meta(
    server: LoopbackProcess, tmp_path: Path, token: str
) -> None:
    base = server.base_urls[0]
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "\n".join([
            json.dumps({"url": f"{base}/page/{token}/1", "headers": {"X-Row": "one"}, "id": 1}),
            "{broken",
            json.dumps({"url": f"{base}/page/{token}/2", "meta": {"k": "v"}}),
            json.dumps({"url": f"{base}/page/{token}/3", "method": "DELETE", "data": "x"}),
            json.dumps({"url": f"{base}/page/{token}/4", "headers": "X-Row: no"}),
        ]) + "\n", encoding="utf-8",
    )  # fmt: skip
    done = run_cli(str(rows))
    assert done.returncode == 1, done.stderr  # the DELETE is answered 405
    assert f"{rows}:2: not JSON" in done.stderr
    assert f"{rows}:5: headers is a string, not an object" in done.stderr
    by_url = {r["url"]: r for r in records_of(done)}
    assert len(by_url) == 3
    assert by_url[f"{base}/page/{token}/1"]["meta"] == {"id": 1}
    assert by_url[f"{base}/page/{token}/2"]["meta"] == {"k": "v"}
    assert by_url[f"{base}/page/{token}/3"]["status"] == 405
    seen = {r.path.rsplit("/", 1)[1]: r for r in server.records(token)}
    assert seen["1"].headers["x-row"] == "one" and seen["1"].method == "GET"
    assert seen["3"].method == "DELETE" and seen["3"].headers["content-length"] == "1"


def test_csv_rows_through_the_library_carry_their_columns(
    server: LoopbackProcess, tmp_path: Path, token: str
) -> None:
    base = server.base_urls[1]
    listed = tmp_path / "shops.csv"
    listed.write_text(
        f'\ufeffshop,link\nA,{base}/page/{token}/a\n"B\nand C",{base}/page/{token}/b\nD,\n',
        encoding="utf-8",
    )
    problems: list[str] = []
    reader = urlfleet.UrlReader(
        [listed], url_column="link", on_problem=lambda p: problems.append(str(p))
    )
    results = urlfleet.fetch_all(reader, jobs=4)
    assert [(r.ok, r.meta) for r in results] == [
        (True, {"shop": "A"}),
        (True, {"shop": "B\nand C"}),
    ]
    assert problems == [f"{listed}:5: empty 'link' column"]


def test_a_missing_url_column_is_exit_2_naming_file_and_columns(tmp_path: Path) -> None:
    listed = tmp_path / "list.csv"
    listed.write_text("name,href\nA,http://127.0.0.1:9/\n", encoding="utf-8")
    done = run_cli(str(listed))
    assert done.returncode == 2
    assert f"{listed}: no 'url' column (the header has 'name', 'href')" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    named = run_cli(str(listed), "--url-column", "nope")
    assert named.returncode == 2 and "no 'nope' column" in named.stderr


def test_a_sitemap_index_on_one_host_and_its_children_on_another_keep_the_rules(
    hosts: LoopbackProcess, token: str
) -> None:
    index_host, child_host = hosts.base_urls
    port = child_host.rsplit(":", 1)[1]
    index = f"{index_host}/sitemap-index/4/3/{token}.xml?port={port}"
    done = run_cli("--input-format", "sitemap", index, "--delay", "0.2", "--per-host", "1")
    assert done.returncode == 0, done.stderr
    records = records_of(done)
    assert len(records) == 12 and all(r["ok"] for r in records)  # pages only: no sitemap record
    assert {r["meta"]["sitemap"] for r in records} == {  # type: ignore[index]
        f"{child_host}/sitemap/3/{token}-{j}.xml" for j in range(4)
    }
    assert all(r["meta"]["lastmod"] == "2024-05-06" for r in records)  # type: ignore[index]
    seen = hosts.records(token)
    child_key = child_host.split("//")[1]
    sitemaps = [r for r in seen if r.host == child_key and r.path.startswith("/sitemap/")]
    assert len(sitemaps) == 4  # every child sitemap was a request to its own host...
    load = host_loads(seen)[child_key]  # ...which kept the gap and the limit, pages and all
    assert load.requests == 16 and load.max_in_flight == 1
    assert load.min_gap >= 0.2 - SERVER_SLACK, load
    assert "sitemaps: 5 read" in done.stderr


def test_an_index_file_sends_its_children_through_the_same_politeness(
    hosts: LoopbackProcess, tmp_path: Path, token: str
) -> None:
    base = hosts.base_urls[1]
    index = tmp_path / "index.xml"
    children = [
        f"<sitemap><loc>{base}/sitemap/2/{token}-{j}.xml.gz</loc></sitemap>" for j in range(3)
    ]
    index.write_text("<sitemapindex>" + "".join(children) + "</sitemapindex>", encoding="utf-8")
    results = urlfleet.fetch_all(urlfleet.UrlReader([index]), jobs=8, per_host=2, delay=0.15)
    assert len(results) == 6 and all(r.ok for r in results), [r.error for r in results]
    load = host_loads(hosts.records(token))[base.split("//")[1]]
    assert load.requests == 9 and load.max_in_flight <= 2
    assert load.min_gap >= 0.15 - SERVER_SLACK, load


def test_a_sitemap_that_fails_gets_a_record_saying_why(
    server: LoopbackProcess, tmp_path: Path, token: str
) -> None:
    base = server.base_urls[2]
    sitemaps = [f"{base}/sitemap-bad/{kind}.xml?{token}" for kind in ("xml", "root", "doctype")]
    missing = f"{base}/status/404/{token}.xml"
    good = f"{base}/sitemap/2/{token}.xml"
    done = run_cli("--input-format", "sitemap", *sitemaps, missing, good, "--retries", "0")
    assert done.returncode == 1, done.stderr
    by_url = {r["url"]: r for r in records_of(done)}
    assert len(by_url) == 6  # four failed sitemaps, two pages
    for url in sitemaps:
        assert by_url[url]["error_kind"] == "sitemap" and not by_url[url]["ok"]
    assert "not well-formed XML" in str(by_url[sitemaps[0]]["error"])
    assert "not a sitemap (the root element is <html>)" in str(by_url[sitemaps[1]]["error"])
    assert "DOCTYPE is not allowed" in str(by_url[sitemaps[2]]["error"])
    assert (by_url[missing]["error"], by_url[missing]["error_kind"]) == (
        "sitemap: HTTP 404",
        "http",
    )
    assert sum(bool(r["ok"]) for r in by_url.values()) == 2


def test_nested_indexes_stop_at_the_depth_limit(server: LoopbackProcess, token: str) -> None:
    nest = f"{server.base_urls[3]}/sitemap-nest/5/{token}.xml"
    done = run_cli("--input-format", "sitemap", nest)
    assert done.returncode == 0, done.stderr  # nothing failed: the deep one was not fetched
    assert "nested more than 3 deep" in done.stderr
    assert records_of(done) == []
    assert len(server.records(token)) == 4  # the given index and three below it


def test_a_sitemap_larger_than_max_bytes_is_refused(server: LoopbackProcess, token: str) -> None:
    url = f"{server.base_urls[4]}/sitemap/500/{token}.xml.gz"
    results = urlfleet.fetch_all(urlfleet.UrlReader([url]), max_bytes=2000)
    (result,) = results
    assert result.error_kind == "sitemap" and "larger than 2000 bytes" in str(result.error)


def test_resume_skips_sitemap_pages_already_fetched(
    server: LoopbackProcess, tmp_path: Path, token: str
) -> None:
    url = f"{server.base_urls[5]}/sitemap/4/{token}.xml"
    out = tmp_path / "out.jsonl"
    first = run_cli(url, "-o", str(out))
    assert first.returncode == 0, first.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    out.write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")  # as if stopped halfway
    server_before = len(server.records(f"/page/{token}/"))
    again = run_cli(url, "-o", str(out), "--resume")
    assert again.returncode == 0, again.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["url"] for r in records) == sorted(
        f"{server.base_urls[5]}/page/{token}/{i}" for i in range(4)
    )
    assert len(server.records(f"/page/{token}/")) == server_before + 2
