from __future__ import annotations

import io
from pathlib import Path

import pytest

from urlfleet.errors import InputError
from urlfleet.read.sources import InputProblem, UrlReader
from urlfleet.urls import redact_url, url_problem


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://example.com/", None),
        ("https://example.com:8443/a?b=c#frag", None),
        ("http://[::1]:8080/", None),
        ("http://bücher.example/", None),
        ("http://user:pw@example.com/", None),
        ("ftp://example.com/", "unsupported scheme 'ftp'"),
        ("example.com/page", "no scheme"),
        ("http:///path", "no host"),
        ("http://exa mple.com/", "spaces"),
        ("http://example.com/\x00", "control characters"),
        ("http://example.com:99999/", "malformed URL"),
        ("http://example.com:0/", "port 0"),
        ("http://example.com/" + "a" * 8000, None),  # RFC 9110: at least 8,000 octets
        ("http://example.com/?q=" + "a" * 65_000, None),
        ("http://example.com/" + "a" * 65_536, "longer than 65536"),
    ],
)
def test_url_problem(url: str, problem: str | None) -> None:
    found = url_problem(url)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_reads_files_skips_comments_blanks_and_duplicates(tmp_path: Path) -> None:
    listed = tmp_path / "urls.txt"
    listed.write_text(
        "# a comment\n\nhttp://a.test/1\n  http://a.test/2  \nhttp://a.test/1\n"
        "ftp://nope/\n   # indented comment\n",
        encoding="utf-8",
    )
    problems: list[InputProblem] = []
    reader = UrlReader([listed], on_problem=problems.append)
    reader.check()
    assert list(reader) == ["http://a.test/1", "http://a.test/2"]
    assert reader.duplicates == 1 and reader.malformed == 1
    assert [str(p).split(": ")[0] for p in problems] == [f"{listed}:6"]


def test_directory_means_its_txt_files_in_order(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("http://b.test/\n", encoding="utf-8")
    (tmp_path / "a.txt").write_text("http://a.test/\n", encoding="utf-8")
    (tmp_path / "notes.md").write_text("http://ignored.test/\n", encoding="utf-8")
    assert list(UrlReader([tmp_path])) == ["http://a.test/", "http://b.test/"]


def test_stdin_and_invalid_utf8() -> None:
    problems: list[InputProblem] = []
    data = io.BytesIO(b"http://a.test/\n\xff\xfe\nhttp://b.test/\n")
    reader = UrlReader(["-"], stdin=data, on_problem=problems.append)
    assert list(reader) == ["http://a.test/", "http://b.test/"]
    assert str(problems[0]) == "-:2: not valid UTF-8"
    assert reader.estimate() is None


def test_unreadable_file_is_an_input_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing.txt"
    with pytest.raises(InputError, match="missing.txt: cannot read"):
        UrlReader([missing]).check()


def test_empty_directory_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no \\*.txt files"):
        UrlReader([tmp_path]).check()


def test_estimate_counts_candidate_lines(tmp_path: Path) -> None:
    listed = tmp_path / "urls.txt"
    listed.write_text("# c\n\nhttp://a.test/\nhttp://a.test/\nbad\n", encoding="utf-8")
    assert UrlReader([listed]).estimate() == 3


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:secret@a.test/x", "http://user:***@a.test/x"),
        ("http://user@a.test/x", "http://user@a.test/x"),
        ("http://a.test/x?q=a@b", "http://a.test/x?q=a@b"),
        ("http://a.test/x", "http://a.test/x"),
    ],
)
def test_redact_url_hides_passwords(url: str, shown: str) -> None:
    assert redact_url(url) == shown
