"""Interrupts, kills and resume, run as a user would: urlfleet in a subprocess, real signals.

A signal goes only once the run has reached the state the test is about (records written, a
host's requests open at the server, a line on stderr), polled for with a deadline: the child
takes most of a second to start, longer on a busy machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from urlfleet.loopback import LoopbackProcess, ServerSpec

pytestmark = pytest.mark.integration


def start_fetch(listed: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "urlfleet", "fetch", str(listed), "-o", str(out),
               "--resume", "-j", "16", "--per-host", "2", "--no-progress", *extra]  # fmt: skip
    return subprocess.Popen(command, stderr=subprocess.PIPE, text=True)


def wait_for(what: str, done: Callable[[], bool], process: subprocess.Popen[str]) -> None:
    """Poll until ``done()``; fail if the child exits first or it takes over 60 s."""
    deadline = time.monotonic() + 60
    while not done():
        assert process.poll() is None, f"exited ({process.returncode}) waiting for {what}"
        assert time.monotonic() < deadline, f"still waiting for {what} after 60 s"
        time.sleep(0.02)


def lines_in(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def open_at(server: LoopbackProcess, base: str) -> int:
    """Connections the server has accepted for the host at ``base`` (for the first host, its
    control requests' too)."""
    return int(server.stats()["host_connections"].get(base.removeprefix("http://"), 0))


class Lines:
    """A child's stderr, read as it comes by a thread of its own."""

    def __init__(self, stream: IO[str] | None) -> None:
        assert stream is not None
        self._stream = stream
        self._lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self._lines.extend(stream), daemon=True)
        self._reader.start()

    def has(self, text: str) -> bool:
        return any(text in line for line in list(self._lines))

    def all(self) -> str:
        """Everything the child said, once it has exited."""
        self._reader.join(timeout=30)  # EOF follows the child's exit
        self._stream.close()
        return "".join(self._lines)


def test_sigint_and_sigkill_then_resume_account_for_every_url(tmp_path: Path) -> None:
    rng = random.Random(20261127)
    token = uuid.uuid4().hex[:8]
    with LoopbackProcess(ServerSpec(hosts=4, latency=0.1)) as server:
        urls = [f"{base}/page/{token}/{i}" for i in range(50) for base in server.base_urls]
        listed, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
        listed.write_text("\n".join(urls) + "\n", encoding="utf-8")
        kills = 0
        for round_ in range(4):
            # A signal after a random number of new records, at most 40 of 200 a round: the
            # run is mid-list when it comes, however fast or slow the machine.
            until = lines_in(out) + rng.randint(1, 40)
            process = start_fetch(listed, out)
            wait_for(f"{until} records", lambda: lines_in(out) >= until, process)  # noqa: B023
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


@dataclass
class TwoInterrupts:
    """What a run that heard Ctrl-C twice exited with, said and recorded."""

    returncode: int
    said: str
    recorded: list[dict[str, Any]]
    fast: str
    slow: str
    gone: bool  # every process of its session had exited within 20 s of it (if it led one)


def interrupt_twice(
    start: Callable[..., subprocess.Popen[str]], tmp_path: Path, token: str
) -> TwoInterrupts:
    """Run ``start(listed, out, *extra)`` on 40 URLs of a fast host and 40 of a slow one (5 s a
    request), and press Ctrl-C twice once slow requests are open and a record is written: to
    its whole session when it leads one (as at a terminal), else to it alone."""
    # The slow host is not the first, where the server's control requests go (open_at).
    with LoopbackProcess(ServerSpec(hosts=2, latency=0.05, host_latency=(None, 5.0))) as server:
        fast, slow = server.base_urls
        urls = [f"{base}/page/{token}/{i}" for i in range(40) for base in server.base_urls]
        listed, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
        listed.write_text("\n".join(urls) + "\n", encoding="utf-8")
        process = start(listed, out, "--grace", "30")
        leads = os.getsid(process.pid) == process.pid
        stderr = Lines(process.stderr)

        def ctrl_c() -> None:
            if leads:
                os.killpg(process.pid, signal.SIGINT)
            else:
                process.send_signal(signal.SIGINT)

        try:
            wait_for("slow requests", lambda: open_at(server, slow) >= 2, process)
            wait_for("a record", lambda: lines_in(out) > 0, process)
            ctrl_c()
            wait_for("the first interrupt heard", lambda: stderr.has("interrupted:"), process)
            ctrl_c()
            process.wait(timeout=30)
            gone = not leads or session_gone(process.pid, within=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            if leads:
                with contextlib.suppress(ProcessLookupError):  # what outlived it holds stderr
                    os.killpg(process.pid, signal.SIGKILL)
            said = stderr.all()
    text = out.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), "a torn line"
    recorded = [json.loads(line) for line in text.splitlines()]
    return TwoInterrupts(process.returncode, said, recorded, fast, slow, gone)


def session_gone(session: int, *, within: float) -> bool:
    """Whether every process of ``session`` (its leader's pid) has exited, waiting up to
    ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(session, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def stopped_at_once(run: TwoInterrupts) -> None:
    """The second Ctrl-C ended ``run`` at once: exit 130, no record of the slow host (its
    requests, open for 5 s, were abandoned; the grace was 30 s), the fast host's kept."""
    assert run.returncode == 130, run.said
    assert "requests still in flight were abandoned" in run.said and "--resume" in run.said
    assert "Traceback" not in run.said
    assert not any(record["url"].startswith(run.slow) for record in run.recorded)
    assert any(record["url"].startswith(run.fast) for record in run.recorded)


def test_second_ctrl_c_stops_at_once_without_a_torn_line(tmp_path: Path) -> None:
    run = interrupt_twice(start_fetch, tmp_path, uuid.uuid4().hex[:8])
    stopped_at_once(run)
    assert all(record["ok"] for record in run.recorded)


def test_grace_runs_out_and_in_flight_urls_get_no_record(tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:8]
    with LoopbackProcess(ServerSpec(hosts=2, latency=0.02, host_latency=(None, 10.0))) as server:
        fast, slow = server.base_urls
        urls = [f"{slow}/page/{token}/{i}" for i in range(4)]
        urls += [f"{fast}/page/{token}/{i}" for i in range(20)]
        listed, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
        listed.write_text("\n".join(urls) + "\n", encoding="utf-8")
        process = start_fetch(listed, out, "--grace", "0.5")
        try:
            # The fast host is done and the slow host's requests (10 s each) are open.
            wait_for("the fast host's records", lambda: lines_in(out) >= 20, process)
            wait_for("slow requests", lambda: open_at(server, slow) >= 2, process)
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 130, stderr
    assert "requests still in flight were abandoned" in stderr
    recorded = {json.loads(line)["url"] for line in out.read_text(encoding="utf-8").splitlines()}
    assert not any(url.startswith(slow) for url in recorded)  # abandoned, so no record
    assert {u for u in urls if u.startswith(fast)} == recorded


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
