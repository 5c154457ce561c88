"""The command line end to end, as a user runs it: a subprocess against the loopback server."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.verdicts import is_a_verdict
from urlfleet.loopback import LoopbackProcess, ServerSpec

pytestmark = pytest.mark.integration


def urlfleet(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "urlfleet", *args],
        input=stdin, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_fetch_writes_records_report_and_exit_code(server: LoopbackProcess, tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:8]
    good = [f"{base}/page/{token}/{i}" for base in server.base_urls for i in range(5)]
    listed = tmp_path / "urls.txt"
    listed.write_text(
        "# my list\n" + "\n".join(good) + f"\n{good[0]}\nnot-a-url\n"
        f"{server.base_urls[0]}/status/404/{token}\n",
        encoding="utf-8",
    )
    out, report = tmp_path / "out.jsonl", tmp_path / "report.json"
    done = urlfleet("fetch", str(listed), "-o", str(out), "--report", str(report), "-j", "16")
    assert done.returncode == 1, done.stderr  # one 404
    assert f"{listed}:43: no scheme" in done.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 41 and len({r["url"] for r in records}) == 41
    assert sum(r["ok"] for r in records) == 40
    data = json.loads(report.read_text(encoding="utf-8"))
    assert (data["urls"], data["ok"], data["failed"]) == (41, 40, 1)
    assert data["duplicates"] == 1 and data["malformed"] == 1
    assert "Traceback" not in done.stderr


def test_all_ok_is_exit_0_and_stdout_carries_the_records(server: LoopbackProcess) -> None:
    urls = [f"{base}/page/{uuid.uuid4().hex}" for base in server.base_urls]
    done = urlfleet("fetch", "-", "--no-progress", stdin="\n".join(urls))
    assert done.returncode == 0, done.stderr
    assert sorted(json.loads(line)["url"] for line in done.stdout.splitlines()) == sorted(urls)


def test_demo_shows_a_real_speedup_that_agrees_with_its_records(tmp_path: Path) -> None:
    out, report = tmp_path / "demo.jsonl", tmp_path / "demo.json"
    done = urlfleet("demo", "-o", str(out), "--report", str(report))
    assert done.returncode == 0, done.stderr
    data = json.loads(report.read_text(encoding="utf-8"))
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert data["urls"] == len(records) == 400 and data["ok"] == 400
    assert data["serial_sample"] == 20
    # One at a time, a URL costs the server's 100 ms latency and little more.
    assert 0.1 <= data["serial_s_per_url"] < 0.15
    assert data["speedup"] == pytest.approx(data["serial_s_per_url"] / data["threaded_s_per_url"])
    assert data["speedup"] > 10
    assert data["serial_estimate_s"] == pytest.approx(data["serial_s_per_url"] * 400)
    assert "speedup" in done.stderr and "at most 4 in flight" in done.stderr
    # Whether it was CPU-bound depends on the machine's load: the line is there, in a known form.
    cpu = [line for line in done.stderr.splitlines() if line.startswith("cpu:      ")]
    assert len(cpu) == 1 and is_a_verdict(cpu[0].removeprefix("cpu:      ")), done.stderr
    assert "of one core in 1 process" in cpu[0]


def test_report_has_a_per_host_table(server: LoopbackProcess, tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:8]
    throttled = server.base_urls[2]
    urls = [f"{throttled}/retry-after/1/1/{token}/x"]
    urls += [f"{base}/page/{token}/{i}" for base in server.base_urls[:4] for i in range(4)]
    report = tmp_path / "report.json"
    done = urlfleet("fetch", "-", "-o", str(tmp_path / "o.jsonl"), "--report", str(report),
                    stdin="\n".join(urls))  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {row["host"]: row for row in json.loads(report.read_text(encoding="utf-8"))["hosts"]}
    assert len(rows) == 4
    slow = rows[throttled.removeprefix("http://")]
    assert slow["throttled"] == 1 and slow["paused_s"] >= 1.0 and slow["requests"] == 6
    assert all(row["p50_s"] >= 0.05 and row["p95_s"] >= row["p50_s"] for row in rows.values())
    assert "busiest hosts:" in done.stderr and "429/503" in done.stderr


def test_a_short_list_starts_no_more_threads_than_it_has_urls(tmp_path: Path) -> None:
    # Two URLs on one host behind a robots.txt, one of them redirected twice: two threads
    # keep all of it going (each job makes one request at a time), -j 16 or not.
    robots = (0, 200, "User-agent: *\nDisallow: /private/\n")
    with LoopbackProcess(ServerSpec(hosts=1, latency=0.01, robots=(robots,))) as server:
        token, base = uuid.uuid4().hex[:8], server.base_urls[0]
        urls = [f"{base}/redirect/2/{token}", f"{base}/page/{token}/1"]
        listed, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
        listed.write_text("\n".join(urls) + "\n", encoding="utf-8")
        done = urlfleet("fetch", str(listed), "-o", str(out), "-j", "16", "--robots")
        asked = [(r.path, r.status) for r in server.records(contains="")]
    assert done.returncode == 0, done.stderr
    assert "URLs on 2 threads" in done.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["url"] for r in records) == sorted(urls) and all(r["ok"] for r in records)
    assert ("/robots.txt", 200) in asked
