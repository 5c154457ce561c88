"""Resuming from damaged or foreign results files: never a traceback, never a wrong skip.

Files are built line by line from kinds whose meaning is known (a record, done or not; garbage;
deep nesting; the wrong types; bytes that are not UTF-8; a lone surrogate; a line too long;
blank lines; a torn last line), so each example checks exactly which URLs count as done, how
many lines are reported as unreadable, and whether the file is refused as not urlfleet's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from urlfleet.errors import InputError
from urlfleet.read import resume
from urlfleet.read.resume import DoneUrls, check_results_file, is_done, repair_torn_tail

LIMIT = 2048  # MAX_RECORD_BYTES while fuzzing, so "too long" lines stay cheap


@dataclass(frozen=True)
class Line:
    data: bytes  # without its newline
    url: str | None = None  # set for a well-formed record
    done: bool = False

    @property
    def blank(self) -> bool:
        return not self.data.strip()


URLS = st.builds(
    lambda host, path: f"http://{host}.test/{path}",
    st.sampled_from(["a", "b", "c"]),
    st.text("abcxyz/é?=&%", max_size=12),
)
STATUSES = st.one_of(st.none(), st.sampled_from([200, 204, 301, 404, 408, 410, 429, 500, 503]))


@st.composite
def records(draw: st.DrawFn) -> Line:
    url, ok, status = draw(URLS), draw(st.booleans()), draw(STATUSES)
    record: dict[str, object] = {"url": url, "ok": ok, "status": status}
    values = st.one_of(st.none(), st.integers(), st.text(max_size=5))
    extra = draw(st.dictionaries(st.sampled_from(["error", "bytes", "host", "zz"]), values))
    record.update(extra)
    keys = draw(st.permutations(list(record)))
    text = json.dumps({k: record[k] for k in keys}, ensure_ascii=draw(st.booleans()))
    return Line(text.encode("utf-8"), url=url, done=is_done(record))


def junk(data: bytes) -> Line:
    return Line(data)


NOT_RECORDS = st.one_of(
    st.binary(max_size=60).map(lambda b: b"\x00" + b.replace(b"\n", b"")).map(junk),
    st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n).map(junk),
    st.just(b"[" * 100_000).map(junk),  # deeper than the parser's recursion limit
    st.sampled_from([
        b'{"url": 5, "ok": "yes"}', b'{"url": "http://a.test/", "ok": "yes"}', b"[1, 2]", b"7",
        b'"http://a.test/"', b"null", b"{}", b'{"ok": true}', b'{"url": null, "ok": true}',
        b'{"url": "http://a.test/\xff", "ok": true}', b'{"url": "\\ud800", "ok": true}',
        b'{"url": "http://a.test/", "ok": true', b"\xef\xbb\xbf\xff\xfe", b"1" * 5000,
        b'{"url": "http://a.test/", "ok": true, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ]).map(junk),
    st.integers(LIMIT + 1, 3 * LIMIT).map(
        lambda n: b'{"url": "http://a.test/", "ok": true, "pad": "' + b"p" * n + b'"}'
    ).map(junk),
)  # fmt: skip
BLANKS = st.sampled_from([b"", b"   ", b"\t"]).map(junk)
LINES = st.one_of(records(), records(), NOT_RECORDS, BLANKS)


def refused(lines: list[Line], torn: bool) -> bool:
    """What check_results_file should say, from the lines' known kinds."""
    for index, line in enumerate(lines):
        if line.blank:
            continue
        if line.url is not None:
            return False
        last = index == len(lines) - 1
        return not (torn and last and line.data.lstrip().startswith(b'{"url": '))
    return False


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LINES, max_size=12), st.booleans())
def test_a_results_file_is_read_or_refused_but_never_raises(lines: list[Line], torn: bool) -> None:
    torn = torn and bool(lines)
    content = b"".join(line.data + b"\n" for line in lines)
    if torn:
        content = content[:-1]
    with TemporaryDirectory() as folder, mock.patch.object(resume, "MAX_RECORD_BYTES", LIMIT):
        path = Path(folder) / "out.jsonl"
        path.write_bytes(content)
        try:
            check_results_file(path)
        except InputError as exc:
            assert refused(lines, torn), exc
            assert "not a urlfleet results file" in str(exc)
        else:
            assert not refused(lines, torn)
        assert path.read_bytes() == content  # checking never changes the file
        repair_torn_tail(path)
        kept = lines[:-1] if torn else lines
        bad: list[int] = []
        done = DoneUrls.read(path, on_bad_line=bad.append)
    expected_bad = [n for n, line in enumerate(kept, start=1) if not line.blank and not line.url]
    assert bad == expected_bad
    finals = {line.url for line in kept if line.url is not None and line.done}
    assert len(done) == sum(1 for line in kept if line.url is not None and line.done)
    for line in kept:
        if line.url is not None:
            assert (line.url in done) == (line.url in finals)


@pytest.mark.parametrize(
    "content",
    [
        b"[" * 100_000 + b"]" * 100_000 + b"\n",
        bytes(range(256)) * 20,
        b'{"url": 5, "ok": "yes"}\n',
        b"[1, 2]\n",
        b"42\n",
        b'{"id": 1, "name": "someone else\'s data"}\n{"url": "http://a.test/", "ok": true}\n',
        b"\n\n   \nhttp://a.test/\n",
    ],
)
def test_a_foreign_file_is_refused_and_left_as_it_was(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(content)
    with pytest.raises(InputError, match="not a urlfleet results file"):
        check_results_file(path)
    assert path.read_bytes() == content


@pytest.mark.parametrize(
    "content",
    [b"", b"\n\n", b'{"url": "http://a.test/", "ok": true}\n', b'{"url": "http://a.tes'],
)
def test_empty_and_torn_first_records_are_accepted(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(content)
    check_results_file(path)
