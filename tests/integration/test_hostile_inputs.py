"""Hostile inputs and outputs through the command line, as a user meets them.

Each test runs ``urlfleet fetch`` in a subprocess against the loopback server and checks what
the user sees (exit code, one clear line on stderr, no traceback) and that nothing already
fetched or already on disk is lost.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
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


# --- outputs that would overwrite an input or each other ------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["-o", "urls.txt"], "error: -o urls.txt is the input urls.txt: refusing to write over it"),
        (["-o", "./link.txt"], "error: -o link.txt is the input urls.txt: refusing to write over"),
        (["-o", "lists/../urls.txt"], "error: -o lists/../urls.txt is the input urls.txt"),
        (["-o", "out.jsonl", "--report", "urls.txt"], "error: --report urls.txt is the input"),
        (["-o", "same.json", "--report", "same.json"],
         "error: -o and --report are the same file (same.json)"),
        (["--save-dir", "urls.txt"], "error: --save-dir urls.txt is the input urls.txt"),
        (["-o", "bodies/out.jsonl", "--save-dir", "bodies"],
         "error: --save-dir bodies holds -o bodies/out.jsonl: bodies and records would mix"),
        (["-o", "out.jsonl", "--report", "r.json", "--save-dir", "."],
         "error: --save-dir . holds -o out.jsonl"),
        (["-o", "bodies", "--save-dir", "bodies"], "error: --save-dir bodies holds -o bodies"),
    ],
)  # fmt: skip
def test_an_output_that_names_an_input_or_another_output_is_refused(
    urls: list[str], tmp_path: Path, options: list[str], message: str
) -> None:
    (tmp_path / "lists").mkdir()
    (tmp_path / "link.txt").symlink_to("urls.txt")
    before = sorted(p.name for p in tmp_path.iterdir())
    listed = (tmp_path / "urls.txt").read_bytes()
    done = subprocess.run(
        [*URLFLEET, "fetch", "urls.txt", *options], cwd=tmp_path, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert one_error_line(done).startswith(message), done.stderr
    assert (tmp_path / "urls.txt").read_bytes() == listed  # the list is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing was written


def test_an_output_inside_an_input_directory_is_not_read_as_a_list(
    urls: list[str], tmp_path: Path
) -> None:
    lists = tmp_path / "lists"
    lists.mkdir()
    (tmp_path / "urls.txt").rename(lists / "urls.txt")
    done = urlfleet("fetch", str(lists), "-o", str(lists / "results.txt"))
    assert done.returncode == 0, done.stderr
    assert len(records(lists / "results.txt")) == len(urls)
    done = urlfleet("fetch", str(lists), "-o", str(lists / "results.txt"))  # now it is in there
    assert done.returncode == 2
    assert "is the input" in one_error_line(done)
    assert len(records(lists / "results.txt")) == len(urls)


def test_dev_null_may_be_both_input_and_output(tmp_path: Path) -> None:
    done = urlfleet("fetch", os.devnull, "-o", os.devnull, "--report", os.devnull)
    assert done.returncode == 0, done.stderr


# --- the report: checked before the run, written whole ---------------------------------------


@pytest.mark.parametrize(
    ("report", "reason"),
    [
        ("missing/dir/report.json", "No such file or directory"),
        ("urls.txt/report.json", "Not a directory"),
        (".", "Is a directory"),
    ],
)
def test_an_unwritable_report_is_refused_before_the_run(
    urls: list[str], tmp_path: Path, report: str, reason: str
) -> None:
    done = subprocess.run(
        [*URLFLEET, "fetch", "urls.txt", "-o", "out.jsonl", "--report", report], cwd=tmp_path,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert one_error_line(done) == f"error: {report}: cannot write report ({reason})"
    assert not (tmp_path / "out.jsonl").exists()  # refused before a URL was fetched


def test_the_report_replaces_the_old_one_whole(urls: list[str], tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text("old", encoding="utf-8")
    keep = tmp_path / "keep.json"
    os.link(report, keep)  # a second name for the old file: replacing must not write into it
    done = urlfleet("fetch", str(tmp_path / "urls.txt"), "-o", str(tmp_path / "out.jsonl"),
                    "--report", str(report))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(report.read_text(encoding="utf-8"))["urls"] == len(urls)
    assert keep.read_text(encoding="utf-8") == "old"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# --- one run per output file -----------------------------------------------------------------


@pytest.mark.parametrize("resume", [False, True])
def test_a_second_run_on_the_same_output_is_refused_at_once(
    server: LoopbackProcess, tmp_path: Path, resume: bool
) -> None:
    token = uuid.uuid4().hex[:8]
    listed = [f"{server.base_urls[0]}/page/{token}/{i}" for i in range(2)]
    (tmp_path / "other.txt").write_text(f"{server.base_urls[1]}/page/{token}\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    # The first run reads its list from stdin, so it holds the output (and its lock) until
    # stdin closes, however long the second run takes to start.
    first = subprocess.Popen(
        [*URLFLEET, "fetch", "-", "-o", str(out), "--no-progress"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert first.stdin is not None
    try:
        first.stdin.write(listed[0] + "\n")
        first.stdin.flush()
        deadline = time.monotonic() + 60
        while not (out.exists() and out.read_text(encoding="utf-8")):  # it is writing
            assert first.poll() is None and time.monotonic() < deadline, "no record in 60 s"
            time.sleep(0.05)
        extra = ["--resume"] if resume else []
        second = urlfleet("fetch", str(tmp_path / "other.txt"), "-o", str(out), *extra)
        assert second.returncode == 2
        assert one_error_line(second) == (
            f"error: {out}: another urlfleet run is writing to it (the file is locked); wait "
            "for that run to end or choose another -o"
        )
        first.stdin.write(listed[1] + "\n")
    finally:
        _, err = first.communicate(timeout=60)  # closes stdin: the list ends
    assert first.returncode == 0, err
    assert sorted(r["url"] for r in records(out)) == sorted(listed)  # whole, not interleaved
    again = urlfleet("fetch", str(tmp_path / "other.txt"), "-o", str(out), "--resume")
    assert again.returncode == 0, again.stderr  # the lock went with the first run
    assert len(records(out)) == 3


# --- --resume on damaged or foreign files ------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"[" * 100_000 + b"]" * 100_000 + b"\n",
        bytes(range(256)) * 12,
        b'{"url": 5, "ok": "yes"}\n',
        b"[1, 2, 3]\n",
        b"3.14\n",
        b"http://a.test/\nhttp://b.test/\n",  # a URL list given as -o by mistake
    ],
)
def test_resume_refuses_a_file_that_is_not_urlfleet_results(
    urls: list[str], tmp_path: Path, content: bytes
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(content)
    done = urlfleet("fetch", str(tmp_path / "urls.txt"), "-o", str(out), "--resume")
    assert done.returncode == 2
    assert one_error_line(done) == (
        f"error: {out}: not a urlfleet results file (line 1 is not a record); refusing to "
        "resume into it"
    )
    assert out.read_bytes() == content  # not appended to, not "repaired"


def test_resume_skips_bad_lines_reports_them_once_and_keeps_every_record(
    urls: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    listed = tmp_path / "urls.txt"
    first = urlfleet("fetch", str(listed), "-o", str(out))
    assert first.returncode == 0, first.stderr
    good = out.read_bytes().splitlines(keepends=True)
    damaged = b"".join([
        *good[:3],
        b"[" * 100_000 + b"]" * 100_000 + b"\n",
        b'{"url": 5, "ok": "yes"}\n', b"[1]\n", b"7\n", b"\xff\xfe\x00 not utf-8\n",
        b'{"url": "\\ud800", "ok": true}\n',
        b'{"url": "http://a.test/", "ok": true, "pad": "' + b"p" * 3_000_000 + b'"}\n',
        *good[3:6],
        b'{"url": "http://torn.te',
    ])  # fmt: skip
    out.write_bytes(damaged)
    done = urlfleet("fetch", str(listed), "-o", str(out), "--resume")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{out}: 7 lines could not be read (the first is line 4); ignored" in done.stderr
    assert done.stderr.count("could not be read") == 1
    assert f"{out}: removed a half-written last line" in done.stderr
    assert f"resuming: 6 URLs in {out} are done and will be skipped" in done.stderr
    after = out.read_bytes()
    assert after.startswith(damaged[: damaged.rindex(b"\n") + 1])  # nothing before was lost
    new = [json.loads(line) for line in after[damaged.rindex(b"\n") + 1 :].splitlines()]
    assert sorted(r["url"] for r in new) == sorted(
        set(urls) - {json.loads(g)["url"] for g in good[:6]}
    )


def test_stdin_redirected_from_the_output_is_refused(tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("http://127.0.0.1:9/a\n")
    with listing.open("rb") as stdin:
        done = subprocess.run([sys.executable, "-m", "urlfleet", "fetch", "-o", str(listing)],
                              stdin=stdin, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and listing.read_text() == "http://127.0.0.1:9/a\n"
    assert done.stderr.strip().endswith("is the file on stdin: refusing to write over it")


def test_ctrl_c_with_a_slow_stdin_exits_130_cleanly(
    server: LoopbackProcess, tmp_path: Path
) -> None:
    # The reading thread is blocked on stdin when the run ends: the exit must stay clean.
    out = tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "urlfleet", "fetch", "-", "-o", str(out), "--no-progress"]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        assert child.stdin is not None and child.stderr is not None
        child.stdin.write(f"{server.base_urls[0]}/page/slow-stdin\n".encode())
        child.stdin.flush()
        deadline = time.monotonic() + 60
        while not (out.exists() and out.read_text()):  # the run is going: its record is out
            assert child.poll() is None and time.monotonic() < deadline, "no record in 60 s"
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        code = child.wait(timeout=20)
        stderr = child.stderr.read().decode()
        child.stdin.close()
    assert code == 130, stderr
    assert "Fatal Python error" not in stderr and len(out.read_text().splitlines()) == 1


def test_a_huge_per_host_is_refused(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text("")
    command = [sys.executable, "-m", "urlfleet", "fetch", "--per-host", "1000000000",
               str(tmp_path / "list.txt")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--per-host must be at most" in done.stderr
