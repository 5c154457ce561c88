"""Records end to end: what the server sent is what the record says (sha256, validators,
timings), CSV in and out, revalidation answered by 304s the server itself recorded, and
brotli and zstd bombs stopped at --max-bytes in a process whose peak memory stays small."""

from __future__ import annotations

import csv
import hashlib
import http.server
import json
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import brotli
import pytest
from backports import zstd

from urlfleet.loopback import LoopbackProcess

pytestmark = pytest.mark.integration

BOMB_SIZE = 1 << 30  # 1 GiB of zeros, once inflated
MAX_BYTES = 1_000_000
PEAK_LIMIT = 256 << 20  # far below the bomb: the fetching process never holds it


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "urlfleet", "fetch", "--no-progress", *args],
        input=stdin, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def csv_records(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def token() -> str:
    return uuid.uuid4().hex[:10]


def test_a_record_says_what_the_server_sent(server: LoopbackProcess, token: str) -> None:
    base = server.base_urls[0]
    url = f"{base}/etag/{token}?latency=0.2"
    done = run_cli("-", "--record-headers", stdin=url + "\n")
    assert done.returncode == 0, done.stderr
    (record,) = [json.loads(line) for line in done.stdout.splitlines()]
    with urllib.request.urlopen(url, timeout=10) as answer:  # the same page, fetched again
        sent = answer.read()
    assert record["sha256"] == hashlib.sha256(sent).hexdigest() and record["bytes"] == len(sent)
    assert record["content_type"] == "text/html; charset=utf-8"
    assert record["content_encoding"] is None
    assert record["etag"] == f'"{token}"'
    assert record["last_modified"] == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert record["unchanged"] is False
    fetched = datetime.fromisoformat(record["fetched_at"].replace("Z", "+00:00"))
    assert record["fetched_at"].endswith("Z") and fetched.utcoffset().total_seconds() == 0
    assert record["ttfb_s"] >= 0.2  # the route's latency comes before the headers
    assert record["elapsed_s"] >= record["ttfb_s"] and record["started_s"] >= 0
    assert record["headers"]["ETag"] == f'"{token}"'
    assert list(record)[-2:] == ["headers", "meta"]


def test_csv_in_csv_out_then_revalidated_by_304s(
    server: LoopbackProcess, tmp_path: Path, token: str
) -> None:
    base = server.base_urls[1]
    listed = tmp_path / "shops.csv"
    listed.write_text(
        f"shop,url,region\nA,{base}/etag/{token}-a,north\nB,{base}/etag/{token}-b,south\n",
        encoding="utf-8",
    )
    first = tmp_path / "results.csv"
    done = run_cli(str(listed), "-o", str(first))
    assert done.returncode == 0, done.stderr
    rows = {row["shop"]: row for row in csv_records(first)}
    with open(first, encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    assert header[-2:] == ["shop", "region"] and "meta" not in header
    assert header[:2] == ["url", "ok"]
    assert rows["A"]["region"] == "north" and rows["A"]["ok"] == "true"
    assert rows["A"]["etag"] == f'"{token}-a"' and rows["A"]["saved_to"] == ""
    # One URL's copy is out of date: its validator no longer matches.
    first.write_text(first.read_text(encoding="utf-8").replace(f'"{token}-b"', '"stale"'),
                     encoding="utf-8")  # fmt: skip

    second, report = tmp_path / "second.csv", tmp_path / "report.json"
    done = run_cli(str(listed), "--revalidate", str(first), "-o", str(second),
                   "--report", str(report))  # fmt: skip
    assert done.returncode == 0, done.stderr
    again = {row["shop"]: row for row in csv_records(second)}
    assert again["A"]["status"] == "304" and again["A"]["unchanged"] == "true"
    assert again["A"]["ok"] == "true" and again["A"]["error"] == "" and again["A"]["bytes"] == "0"
    assert again["A"]["sha256"] == "" and again["A"]["etag"] == f'"{token}-a"'
    assert again["B"]["status"] == "200" and again["B"]["unchanged"] == "false"
    seen = {r.path.rsplit("/", 1)[1]: r for r in server.records(token) if r.headers.get(
        "if-none-match")}  # fmt: skip
    assert seen[f"{token}-a"].headers["if-none-match"] == f'"{token}-a"'
    assert seen[f"{token}-a"].status == 304
    assert seen[f"{token}-b"].headers["if-none-match"] == '"stale"'
    assert seen[f"{token}-b"].status == 200
    summary = json.loads(report.read_text(encoding="utf-8"))
    assert (summary["unchanged"], summary["changed"], summary["ok"]) == (1, 1, 2)
    assert "revalidated: 1 unchanged (304), 1 changed" in done.stderr

    # --resume reads the CSV back: both URLs are done, and nothing is asked again.
    before = len(server.records(token))
    done = run_cli(str(listed), "-o", str(second), "--resume")
    assert done.returncode == 0, done.stderr
    assert "resuming: 2 URLs" in done.stderr and len(csv_records(second)) == 2
    assert len(server.records(token)) == before


def test_a_bad_revalidate_file_is_one_line_with_its_line(tmp_path: Path) -> None:
    prev = tmp_path / "prev.jsonl"
    prev.write_text('{"url": "http://127.0.0.1:9/", "ok": true}\nnot json\n', encoding="utf-8")
    listed = tmp_path / "urls.txt"
    listed.write_text("http://127.0.0.1:9/\n", encoding="utf-8")
    done = run_cli(str(listed), "--revalidate", str(prev))
    assert done.returncode == 2 and done.stdout == ""
    last = done.stderr.strip().splitlines()[-1]
    assert last.endswith(f"{prev}:2: --revalidate: not a urlfleet record")
    assert "Traceback" not in done.stderr


# --------------------------------------------------------------------------- bombs


def _compressed(make: Callable[[], tuple[Callable[[bytes], bytes], Callable[[], bytes]]]) -> bytes:
    feed, finish = make()
    zeros = bytes(1 << 20)
    parts = [feed(zeros) for _ in range(BOMB_SIZE // len(zeros))]
    return b"".join([*parts, finish()])


def _brotli() -> tuple[Callable[[bytes], bytes], Callable[[], bytes]]:
    compressor = brotli.Compressor(quality=1)
    return compressor.process, compressor.finish


def _zstd() -> tuple[Callable[[bytes], bytes], Callable[[], bytes]]:
    compressor = zstd.ZstdCompressor(level=1)
    return compressor.compress, compressor.flush


@pytest.fixture(scope="module")
def bombs() -> Iterator[tuple[str, list[str]]]:
    """A stdlib server with /br and /zstd: 1 GiB of zeros each, sent compressed; it keeps
    the Accept-Encoding of each request it was sent."""
    bodies = {"/br": ("br", _compressed(_brotli)), "/zstd": ("zstd", _compressed(_zstd))}
    accepted: list[str] = []

    class Bombs(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            accepted.append(self.headers.get("Accept-Encoding", ""))
            coding, body = bodies[self.path]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Encoding", coding)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except OSError:
                pass  # the client stopped reading at --max-bytes and hung up

        def log_message(self, *args: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Bombs) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}", accepted
        finally:
            httpd.shutdown()
            thread.join()


# The fetching process reports its own peak: VmHWM, the high-water mark of its memory since
# its exec. (ru_maxrss from wait4 would not do: at exec a child inherits the peak of the
# process it was spawned from, here the test runner's.)
PEAK_OF_FETCH = """
import sys
from urlfleet.cli import main
try:
    code = main(sys.argv[2:])
finally:
    with open("/proc/self/status", encoding="ascii") as status:
        peak = next(line for line in status if line.startswith("VmHWM:"))
    with open(sys.argv[1], "w", encoding="ascii") as out:
        out.write(peak.split()[1])  # kB
raise SystemExit(code)
"""


@pytest.mark.parametrize("coding", ["br", "zstd"])
def test_a_compressed_bomb_stops_at_max_bytes_in_little_memory(
    bombs: tuple[str, list[str]], tmp_path: Path, coding: str
) -> None:
    base, accepted = bombs
    out, peak_kb = tmp_path / "out.jsonl", tmp_path / "peak.txt"
    done = subprocess.run(
        [sys.executable, "-c", PEAK_OF_FETCH, str(peak_kb), "fetch", "--no-progress", "-",
         "-o", str(out), "--max-bytes", str(MAX_BYTES), "--retries", "0"],
        input=f"{base}/{coding}\n", capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    (record,) = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert record["truncated"] is True and record["bytes"] == MAX_BYTES
    assert record["content_encoding"] == coding and record["error_kind"] == "body"
    assert record["sha256"] == hashlib.sha256(bytes(MAX_BYTES)).hexdigest()
    peak = int(peak_kb.read_text(encoding="ascii")) * 1024
    assert 0 < peak < PEAK_LIMIT, f"peak RSS {peak >> 20} MiB"
    # requests asked for br and zstd by itself, from what urllib3 can decode
    assert coding in accepted[-1].replace(" ", "").split(",")
