"""Hostile inputs and outputs through the command line, as a user meets them.

Each test runs ``urlfleet fetch`` in a subprocess against the loopback server and checks what
the user sees (exit code, one clear line on stderr, no traceback) and that nothing already
fetched or already on disk is lost.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from urlfleet.loopback import LoopbackProcess

pytestmark = pytest.mark.integration

URLFLEET = [sys.executable, "-m", "urlfleet"]


def urlfleet(
    *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*URLFLEET, *args], input=stdin, capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip


def shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``command`` in bash, with ``urlfleet`` meaning this interpreter's urlfleet."""
    prefix = f'urlfleet() {{ {shlex.join(URLFLEET)} "$@"; }}; '
    return subprocess.run(
        ["bash", "-c", prefix + command], cwd=cwd, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The stderr of a refused run: exactly one line, no traceback; returns it."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture
def urls(server: LoopbackProcess, tmp_path: Path) -> list[str]:
    token = uuid.uuid4().hex[:8]
    listed = [f"{base}/page/{kind}/{token}/{i}" for base in server.base_urls[:2]
              for kind in ("shop", "blog") for i in range(3)]  # fmt: skip
    (tmp_path / "urls.txt").write_text("\n".join(listed) + "\n", encoding="utf-8")
    return listed


# --- streams: read once, like '-' ----------------------------------------------------------


def test_process_substitution_is_read_once(urls: list[str], tmp_path: Path) -> None:
    done = shell("urlfleet fetch <(grep shop urls.txt) -o out.jsonl --no-progress", tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(r["url"] for r in records(tmp_path / "out.jsonl")) == sorted(
        u for u in urls if "/shop/" in u
    )


def test_dev_stdin_is_read_once(urls: list[str], tmp_path: Path) -> None:
    done = shell("grep blog urls.txt | urlfleet fetch /dev/stdin -o out.jsonl", tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(records(tmp_path / "out.jsonl")) == 6


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_fifo_is_read_once_and_does_not_hang(urls: list[str], tmp_path: Path) -> None:
    fifo = tmp_path / "urls.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "w", encoding="utf-8") as pipe:
            pipe.write("\n".join(urls) + "\n")

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    done = urlfleet("fetch", str(fifo), "-o", str(tmp_path / "out.jsonl"), timeout=30)
    feeder.join(5)
    assert done.returncode == 0, done.stderr
    assert len(records(tmp_path / "out.jsonl")) == len(urls)


def test_a_stream_mixed_with_files_keeps_the_files_checked(tmp_path: Path) -> None:
    done = shell("urlfleet fetch <(echo http://a.test/) missing.txt -o out.jsonl", tmp_path)
    assert done.returncode == 2
    assert one_error_line(done) == "error: missing.txt: cannot read (No such file or directory)"
    assert not (tmp_path / "out.jsonl").exists()


def test_long_urls_are_fetched(server: LoopbackProcess, tmp_path: Path) -> None:
    url = f"{server.base_urls[0]}/page/{uuid.uuid4().hex}/" + "p" * 8000
    done = urlfleet("fetch", "-", "-o", str(tmp_path / "out.jsonl"), stdin=url + "\n")
    assert done.returncode == 0, done.stderr
    (record,) = records(tmp_path / "out.jsonl")
    assert record["url"] == url and record["ok"] is True
    absurd = f"{server.base_urls[0]}/" + "p" * 70_000
    done = urlfleet("fetch", "-", "-o", str(tmp_path / "out.jsonl"), stdin=absurd + "\n")
    assert f"-:1: URL longer than 65536 characters ({len(absurd)})" in done.stderr
