"""Hostile inputs at the unit level: streams read once, long lines, long URLs."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest
import responses

from urlfleet.cli import EXIT_USAGE, main
from urlfleet.cli.options import MAX_JOBS
from urlfleet.cli.outputs import check_report_path, open_locked
from urlfleet.errors import InputError
from urlfleet.read.lines import MAX_LINE_BYTES, bounded_lines
from urlfleet.read.paths import is_stream
from urlfleet.read.sources import InputProblem, UrlReader
from urlfleet.report.summary import write_atomically
from urlfleet.urls import MAX_URL_LENGTH, url_problem

Capsys = pytest.CaptureFixture[str]


def test_regular_files_and_directories_are_not_streams(tmp_path: Path) -> None:
    listed = tmp_path / "urls.txt"
    listed.write_text("http://a.test/\n", encoding="utf-8")
    assert not is_stream(str(listed)) and not is_stream(str(tmp_path))
    assert not is_stream(str(tmp_path / "missing.txt"))
    assert is_stream("-") and is_stream(os.devnull)


def test_a_fifo_is_neither_opened_by_check_nor_counted_by_estimate(tmp_path: Path) -> None:
    # Opening a FIFO for reading waits for a writer: if check() or estimate() opened it, this
    # test would hang (the timeout below turns that into a failure).
    fifo = tmp_path / "urls.fifo"
    os.mkfifo(fifo)
    reader = UrlReader([fifo])
    done = threading.Event()

    def probe() -> None:
        reader.check()
        assert reader.estimate() is None
        done.set()

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(5)
    assert done.is_set(), "check() or estimate() opened the FIFO"

    def write() -> None:
        with open(fifo, "wb") as pipe:
            pipe.write(b"http://a.test/1\nhttp://a.test/2\n")

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    assert list(reader) == ["http://a.test/1", "http://a.test/2"]  # the one and only read
    writer.join(5)


def test_estimate_is_none_when_any_input_is_a_stream(tmp_path: Path) -> None:
    listed = tmp_path / "urls.txt"
    listed.write_text("http://a.test/\n", encoding="utf-8")
    assert UrlReader([listed]).estimate() == 1
    assert UrlReader([listed, os.devnull]).estimate() is None


def test_files_are_listed_once_so_a_new_file_in_the_directory_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("http://a.test/\n", encoding="utf-8")
    reader = UrlReader([tmp_path])
    reader.check()
    (tmp_path / "b.txt").write_text("http://b.test/\n", encoding="utf-8")
    assert list(reader) == ["http://a.test/"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", []),
        (b"a\nb", [b"a\n", b"b"]),
        (b"x" * 10 + b"\n", [b"x" * 10 + b"\n"]),
        (b"x" * 11 + b"\nok\n", [None, b"ok\n"]),
        (b"x" * 50, [None]),
        (b"x" * 10, [b"x" * 10]),
    ],
)
def test_bounded_lines(data: bytes, expected: list[bytes | None]) -> None:
    assert list(bounded_lines(io.BytesIO(data), 10)) == expected


def test_an_endless_line_is_skipped_without_being_held(tmp_path: Path) -> None:
    data = io.BytesIO(b"\0" * (3 * MAX_LINE_BYTES) + b"\nhttp://a.test/\n")
    problems: list[InputProblem] = []
    assert list(UrlReader(["-"], stdin=data, on_problem=problems.append)) == ["http://a.test/"]
    assert [str(p) for p in problems] == [f"-:1: line longer than {MAX_LINE_BYTES} bytes"]


def test_urls_of_8000_characters_are_accepted_and_absurd_ones_refused() -> None:
    assert url_problem("http://a.test/" + "p" * 8000) is None
    assert url_problem("http://a.test/?q=" + "é" * 20_000) is None
    problem = url_problem("http://a.test/" + "p" * MAX_URL_LENGTH)
    assert problem == f"URL longer than {MAX_URL_LENGTH} characters ({MAX_URL_LENGTH + 14})"


def empty_list(tmp_path: Path) -> str:
    listed = tmp_path / "urls.txt"
    listed.write_text("", encoding="utf-8")
    return str(listed)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--timeout", "inf"], "--timeout must be a finite number of seconds, got inf"),
        (["--timeout", "nan"], "--timeout must be a finite number of seconds, got nan"),
        (["--timeout", "1e999"], "--timeout must be a finite number of seconds, got inf"),
        (["--timeout", "0"], "--timeout must be > 0 seconds, got 0"),
        (["--timeout", "1e300"], "--timeout must be at most 604800 seconds (a week), got 1e+300"),
        (["--delay", "inf"], "--delay must be a finite number of seconds, got inf"),
        (["--delay", "-1"], "--delay must be >= 0 seconds, got -1"),
        (["--jitter=-inf"], "--jitter must be a finite number of seconds, got -inf"),
        (["--grace", "inf"], "--grace must be a finite number of seconds, got inf"),
        (["--grace", "-0.5"], "--grace must be >= 0 seconds, got -0.5"),
        (["--max-wait", "inf"], "--max-wait must be a finite number of seconds, got inf"),
        (["--backoff", "nan"], "--backoff must be a finite number of seconds, got nan"),
        (["--host-backoff", "-2"], "--host-backoff must be >= 0 seconds, got -2"),
        (["--max-crawl-delay", "inf"], "--max-crawl-delay must be a finite number of seconds"),
        (["--retries", "-1"], "--retries must be >= 0, got -1"),
        (["--max-bytes", "-1"], "--max-bytes must be >= 0, got -1"),
        (["--max-redirects", "-3"], "--max-redirects must be >= 0, got -3"),
        (["--host-max-failures", "-1"], "--host-max-failures must be >= 0, got -1"),
        (["-j", "10000000"], f"-j/--jobs 10000000 is beyond the {MAX_JOBS} threads"),
        (["-j", "-10000000"], f"-j/--jobs -10000000 is beyond the {MAX_JOBS} threads"),
    ],
)
def test_numbers_no_run_can_use_are_exit_2_in_one_line_naming_the_option(
    capsys: Capsys, tmp_path: Path, options: list[str], message: str
) -> None:
    assert main(["fetch", empty_list(tmp_path), "--no-progress", *options]) == EXIT_USAGE
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: bad option: " + message), err


def test_the_jobs_ceiling_itself_is_allowed(capsys: Capsys, tmp_path: Path) -> None:
    assert main(["fetch", empty_list(tmp_path), "--no-progress", "-j", str(MAX_JOBS)]) == 0


@responses.activate
def test_threads_the_machine_cannot_start_are_exit_2_in_one_line(
    capsys: Capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    responses.get("http://a.test/", body="x")
    listed = tmp_path / "urls.txt"
    listed.write_text("http://a.test/\n", encoding="utf-8")

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading, "_start_new_thread", refuse)
    out = tmp_path / "out.jsonl"
    assert main(["fetch", str(listed), "-o", str(out), "--no-progress", "-j", "8"]) == EXIT_USAGE
    err = capsys.readouterr().err.splitlines()
    assert err == ["error: cannot start 8 threads on this machine (its limit on threads or "
                   "memory); records so far are kept; try a smaller -j"]  # fmt: skip


def test_a_report_that_fails_to_replace_leaves_the_old_one_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = tmp_path / "report.json"
    report.write_text("old", encoding="utf-8")

    def fail(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space left"):
        write_atomically(report, b"new")
    assert report.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_report_path_that_is_a_device_is_written_in_place(tmp_path: Path) -> None:
    check_report_path(Path(os.devnull))
    write_atomically(Path(os.devnull), b"{}")
    assert Path(os.devnull).is_char_device()


def test_opening_a_locked_output_leaves_it_whole(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"url": "http://a.test/", "ok": true}\n', encoding="utf-8")
    with open_locked(out, append=True) as first:
        with pytest.raises(InputError, match="another urlfleet run is writing to it"):
            open_locked(out, append=False)  # would have emptied it, had it not been locked
        first.write('{"url": "http://b.test/", "ok": true}\n')
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2
    with open_locked(out, append=False):  # the lock went with the first
        pass
    assert out.read_text(encoding="utf-8") == ""


def test_an_origin_seen_at_once_as_plain_passes_every_check() -> None:
    # checked_url skips urlsplit for an origin its pattern takes: the checks must agree.
    import random

    from urlfleet import urls

    pieces = ["a", "Z", "0", "9", ".", "-", ":", "0", "65535", "65536", "/", "?", "#", "@", "[",
              "]", "_", "\u00e9", "%41", "x"]  # fmt: skip
    rng = random.Random(11)
    for _ in range(5000):
        url = rng.choice(["http://", "https://", "HTTP://", "ftp://", "http:/", "http:///"])
        url += "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
        plain = urls._PLAIN_ORIGIN.match(url)
        if plain is not None and int(plain.group(1) or 1) <= 65535:
            assert urls._origin_problem(url) is None, url
