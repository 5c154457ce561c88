"""Bounded resources: a low open-files limit, a parse process that dies."""

from __future__ import annotations

import functools
import json
import os
import random
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import urlfleet
from tests.realparts import child_env
from urlfleet import Result
from urlfleet.loopback import LoopbackProcess, ServerSpec

pytestmark = pytest.mark.integration


def under_ulimit(limit: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = f'ulimit -n {limit}; exec "$0" "$@"'
    return subprocess.run(
        ["bash", "-c", command, sys.executable, *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_more_hosts_than_sockets_fit_under_ulimit_256(tmp_path: Path) -> None:
    # 400 hosts that may each hold 8 connections: 3,200 idle sockets if every pool kept its
    # own, under a limit of 256 (soft and hard). The pools shrink to fit; nothing fails.
    with LoopbackProcess(ServerSpec(hosts=400, latency=0.02)) as server:
        token = uuid.uuid4().hex[:8]
        urls = [f"{base}/page/{token}/{i}" for base in server.base_urls for i in range(5)]
        random.Random(7).shuffle(urls)
        listed, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
        listed.write_text("\n".join(urls) + "\n", encoding="utf-8")
        done = under_ulimit("256", "-m", "urlfleet", "fetch", str(listed), "-o", str(out),
                            "-j", "64", "--per-host", "8", "--no-progress")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Too many open files" not in done.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 2000 and all(r["ok"] for r in records)


def test_two_thousand_named_hosts_under_ulimit_256(tmp_path: Path) -> None:
    # 2,000 host names (one politeness key and one pool each), all served by one loopback
    # socket through a private hosts mapping, one URL each, under a limit of 256.
    with LoopbackProcess(ServerSpec(hosts=1, latency=0.01)) as server:
        port = server.base_urls[0].rsplit(":", 1)[1]
        names = {f"h{i}.urlfleet.test": "127.0.0.1" for i in range(2000)}
        urls = [f"http://{name}:{port}/page/{name}" for name in names]
        listed, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
        listed.write_text("\n".join(urls) + "\n", encoding="utf-8")
        command = 'ulimit -n 256; exec "$0" "$@"'
        done = subprocess.run(
            ["bash", "-c", command, sys.executable, "-m", "urlfleet", "fetch", str(listed),
             "-o", str(out), "-j", "64", "--no-progress"],
            capture_output=True, text=True, timeout=180, check=False, env=child_env(names),
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 2000 and all(r["ok"] for r in records)
    assert len({r["host"] for r in records}) == 2000


def test_a_limit_too_low_for_the_threads_is_one_line_and_exit_2(tmp_path: Path) -> None:
    listed = tmp_path / "urls.txt"
    listed.write_text("http://127.0.0.1:9/\n", encoding="utf-8")
    done = under_ulimit("60", "-m", "urlfleet", "fetch", str(listed), "-j", "64", "--no-progress")
    assert done.returncode == 2, done.stderr
    assert "too few file descriptors" in done.stderr and "-j 44" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    code = "from urlfleet.fetching.adapter import open_files_limit; print(open_files_limit())"
    done = subprocess.run(
        ["bash", "-c", 'ulimit -Sn 256 && ulimit -Hn 4096 && exec "$0" -c "$1"',
         sys.executable, code],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "4096"


def die_at(url: str, result: Result) -> int:
    if result.url == url:
        os._exit(1)  # as a segfault would: no exception, no goodbye
    return len(result.content)


def test_a_parser_process_that_dies_costs_one_url_its_parse(server: LoopbackProcess) -> None:
    token = uuid.uuid4().hex[:8]
    urls = [f"{base}/page/{token}/{i}" for base in server.base_urls for i in range(6)]
    fatal = urls[9]
    results = urlfleet.fetch_all(urls, jobs=8, parse=functools.partial(die_at, fatal),
                                 parse_jobs=2)  # fmt: skip
    assert len(results) == len(urls) and all(r.ok for r in results)
    assert [r.url for r in results if r.parse_error] == [fatal]
    died = next(r for r in results if r.parse_error)
    assert died.parse_error is not None and "the parser process died" in died.parse_error
    assert all(r.parsed == len(r.content) > 0 for r in results if r is not died)
