"""Interrupts, kills and resume, run as a user would: urlfleet in a subprocess, real signals."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from urlfleet.loopback import LoopbackProcess, ServerSpec

pytestmark = pytest.mark.integration


def start_fetch(listed: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "urlfleet", "fetch", str(listed), "-o", str(out),
               "--resume", "-j", "16", "--per-host", "2", "--no-progress", *extra]  # fmt: skip
    return subprocess.Popen(command, stderr=subprocess.PIPE, text=True)


def test_sigint_and_sigkill_then_resume_account_for_every_url(tmp_path: Path) -> None:
    rng = random.Random(20261127)
    token = uuid.uuid4().hex[:8]
    with LoopbackProcess(ServerSpec(hosts=4, latency=0.1)) as server:
        urls = [f"{base}/page/{token}/{i}" for i in range(50) for base in server.base_urls]
        listed, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
        listed.write_text("\n".join(urls) + "\n", encoding="utf-8")
        kills = 0
        for round_ in range(4):
            written = out.stat().st_size if out.exists() else 0
            process = start_fetch(listed, out)
            deadline = time.monotonic() + 30
            while not out.exists() or out.stat().st_size == written:  # records are coming
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.6))
            how = signal.SIGINT if round_ % 2 == 0 else signal.SIGKILL
            process.send_signal(how)
            _, stderr = process.communicate(timeout=60)
            if how == signal.SIGINT:
                assert process.returncode == 130, stderr
                assert "Traceback" not in stderr
            else:
                kills += 1
        final = start_fetch(listed, out)
        _, stderr = final.communicate(timeout=120)
        assert final.returncode == 0, stderr
        hits = Counter((r.host, r.path) for r in server.records(contains=token))
    lines = out.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]  # every line whole: json.loads would fail
    per_url = Counter(record["url"] for record in records)
    assert set(per_url) == set(urls) and max(per_url.values()) == 1
    assert all(record["ok"] for record in records)
    # No URL fetched twice, except those in flight at a kill: at most 4 hosts x 2 requests,
    # plus the few whose response had arrived but whose record was not written yet.
    refetched = sum(count - 1 for count in hits.values())
    assert refetched <= kills * (4 * 2 + 4)


def test_second_ctrl_c_stops_at_once_without_a_torn_line(tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:8]
    with LoopbackProcess(ServerSpec(hosts=2, latency=0.05, host_latency=(5.0,))) as server:
        urls = [f"{base}/page/{token}/{i}" for i in range(40) for base in server.base_urls]
        listed, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
        listed.write_text("\n".join(urls) + "\n", encoding="utf-8")
        process = start_fetch(listed, out, "--grace", "30")
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)  # the slow host's requests would take 5 s
        time.sleep(0.3)
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        assert time.monotonic() - started < 2.0
    assert process.returncode == 130 and "--resume" in stderr
    text = out.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n")
    assert all(json.loads(line)["ok"] for line in text.splitlines())


def test_grace_runs_out_and_in_flight_urls_get_no_record(tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:8]
    with LoopbackProcess(ServerSpec(hosts=2, latency=0.02, host_latency=(10.0,))) as server:
        slow, fast = server.base_urls
        urls = [f"{slow}/page/{token}/{i}" for i in range(4)]
        urls += [f"{fast}/page/{token}/{i}" for i in range(20)]
        listed, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
        listed.write_text("\n".join(urls) + "\n", encoding="utf-8")
        process = start_fetch(listed, out, "--grace", "0.5")
        time.sleep(1.5)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    recorded = {json.loads(line)["url"] for line in out.read_text(encoding="utf-8").splitlines()}
    assert not any(url.startswith(slow) for url in recorded)  # abandoned, so no record
    assert {u for u in urls if u.startswith(fast)} <= recorded


def test_resume_repairs_a_torn_last_line(server: LoopbackProcess, tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:8]
    urls = [f"{base}/page/{token}/{i}" for base in server.base_urls for i in range(2)]
    listed, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
    listed.write_text("\n".join(urls) + "\n", encoding="utf-8")
    first = json.dumps({"url": urls[0], "ok": True, "status": 200})
    out.write_text(first + '\n{"url": "' + urls[1] + '", "ok": tr', encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "urlfleet", "fetch", str(listed), "-o", str(out), "--resume"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "half-written last line" in done.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["url"] for r in records) == sorted(urls)
    assert len(server.records(contains=token)) == len(urls) - 1  # urls[0] was done


def test_full_disk_is_a_clear_exit_2(server: LoopbackProcess) -> None:
    urls = [f"{base}/page/{uuid.uuid4().hex}" for base in server.base_urls]
    done = subprocess.run(
        [sys.executable, "-m", "urlfleet", "fetch", "-", "-o", "/dev/full"],
        input="\n".join(urls), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "No space left on device" in done.stderr and "Traceback" not in done.stderr
