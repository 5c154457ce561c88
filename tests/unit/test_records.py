"""Records: the keys and their order, sha256, CSV writing and reading back, revalidation."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
import responses

import urlfleet
from urlfleet.errors import InputError
from urlfleet.read.items import UrlRequest
from urlfleet.read.resume import DoneUrls, check_results_file
from urlfleet.read.revalidation import Validators
from urlfleet.record.csvout import CsvWriter, csv_cell, header_of
from urlfleet.record.records import RECORD_FIELDS, JsonlWriter, Result, record_columns
from urlfleet.report.summary import build_report
from urlfleet.report.tally import Phase, Tally

FAST = {"backoff": 0.0, "host_backoff": 0.0, "jobs": 2}
NEW_KEYS = ("content_type", "content_encoding", "fetched_at", "started_s", "ttfb_s", "sha256",
            "etag", "last_modified", "unchanged")  # fmt: skip


def result(**kw: object) -> Result:
    base: dict[str, object] = dict(url="http://a.test/", ok=True, status=200, error=None,
                                   attempts=1, elapsed_s=0.1, bytes=5, host="a.test")  # fmt: skip
    base.update(kw)
    return Result(**base)  # type: ignore[arg-type]


def test_new_keys_follow_the_old_ones_and_meta_stays_last() -> None:
    assert RECORD_FIELDS[-1] == "meta"
    assert RECORD_FIELDS[-1 - len(NEW_KEYS) : -1] == NEW_KEYS
    assert RECORD_FIELDS.index("error_kind") < RECORD_FIELDS.index("content_type")
    plain = result(headers={"ETag": '"x"'}, meta={"id": 1})
    assert tuple(plain.to_record()) == RECORD_FIELDS
    with_headers = plain.to_record(headers=True)
    assert tuple(with_headers)[-2:] == ("headers", "meta")
    assert with_headers["headers"] == {"ETag": '"x"'} and with_headers["meta"] == {"id": 1}
    assert tuple(with_headers) == record_columns(headers=True)
    # no response, no headers: null, not an empty dict that looks like an answer
    assert result(status=None, ok=False).to_record(headers=True)["headers"] is None


def test_jsonl_writer_adds_headers_only_when_asked() -> None:
    stream = io.StringIO()
    JsonlWriter(stream).write(result(headers={"A": "1"}))
    JsonlWriter(stream, record_headers=True).write(result(headers={"A": "1"}))
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert "headers" not in first and second["headers"] == {"A": "1"}


@responses.activate
def test_a_response_fills_the_new_keys() -> None:
    body = b"hello, records"
    responses.get("http://a.test/x", body=body, headers={
        "Content-Type": "text/plain; charset=utf-8", "ETag": '"v1"',
        "Last-Modified": "Tue, 14 Nov 2023 22:13:20 GMT",
    })  # fmt: skip
    before = datetime.now(timezone.utc)
    (got,) = urlfleet.fetch_all(["http://a.test/x"], **FAST)
    assert got.ok and got.sha256 == hashlib.sha256(body).hexdigest()
    assert got.content_type == "text/plain; charset=utf-8" and got.content_encoding is None
    assert got.etag == '"v1"' and got.last_modified == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert got.fetched_at is not None and got.fetched_at.endswith("Z")
    fetched = datetime.fromisoformat(got.fetched_at.replace("Z", "+00:00"))
    assert fetched.utcoffset() is not None and fetched >= before.replace(microsecond=0)
    assert got.started_s is not None and got.started_s >= 0
    assert got.ttfb_s is not None and got.ttfb_s >= 0
    assert got.unchanged is False and got.revalidated is False


@responses.activate
def test_sha256_is_of_what_was_kept_and_null_without_a_body(tmp_path: Path) -> None:
    responses.get("http://a.test/big", body=b"x" * 100)
    responses.get("http://a.test/saved", body=b"on disk")
    responses.get("http://a.test/busy", status=503)
    results = urlfleet.fetch_all(
        ["http://a.test/big", "http://a.test/saved", "http://a.test/busy"],
        max_bytes=10, retries=0, **FAST,
    )  # fmt: skip
    big, _, busy = results
    assert big.truncated and big.sha256 == hashlib.sha256(b"x" * 10).hexdigest()
    assert busy.sha256 is None  # a retryable status: its body was never read
    (saved,) = urlfleet.fetch_all(
        ["http://a.test/saved"], save_dir=tmp_path, keep_content=False, **FAST
    )
    assert saved.content == b"" and saved.saved_to is not None
    assert saved.sha256 == hashlib.sha256(b"on disk").hexdigest()
    assert hashlib.sha256(Path(saved.saved_to).read_bytes()).hexdigest() == saved.sha256


@responses.activate
def test_validators_become_conditional_headers_and_a_304_is_ok_unchanged(
    tmp_path: Path,
) -> None:
    responses.get("http://a.test/same", status=304, headers={"ETag": '"v1"'})
    responses.get("http://a.test/plain", status=304)
    responses.get("http://a.test/own", status=304)
    items = [
        UrlRequest("http://a.test/same", etag='"v1"', last_modified="Tue, 14 Nov 2023"),
        "http://a.test/plain",  # not conditional: a 304 is no answer to it
        UrlRequest("http://a.test/own", etag='"v9"', headers={"If-None-Match": '"mine"'}),
    ]
    same, plain, own = urlfleet.fetch_all(items, save_dir=tmp_path, **FAST)
    sent = {call.request.url: call.request.headers for call in responses.calls}
    assert sent["http://a.test/same"]["If-None-Match"] == '"v1"'
    assert sent["http://a.test/same"]["If-Modified-Since"] == "Tue, 14 Nov 2023"
    assert "If-None-Match" not in sent["http://a.test/plain"]
    assert sent["http://a.test/own"]["If-None-Match"] == '"mine"'  # its own header wins
    assert same.ok and same.unchanged and same.error is None and same.sha256 is None
    assert same.saved_to is None and not list(tmp_path.iterdir())
    assert same.etag == '"v1"' and same.last_modified == "Tue, 14 Nov 2023"  # carried on
    assert not plain.ok and not plain.unchanged and plain.error == "HTTP 304"
    assert own.ok and own.unchanged


def test_the_report_counts_changed_and_unchanged() -> None:
    tally = Tally()
    for each in (result(unchanged=True, status=304, revalidated=True),
                 result(revalidated=True), result(),
                 result(ok=False, status=500, revalidated=True)):  # fmt: skip
        tally.add(each)
    report = build_report([Phase("threaded", 2, 1.0, tally)], urlfleet.FetchConfig())
    assert (report.unchanged, report.changed, report.ok) == (1, 1, 3)
    assert "revalidated: 1 unchanged (304), 1 changed" in report.summary()
    assert json.loads(report.to_json())["unchanged"] == 1


# --------------------------------------------------------------------------- CSV


@pytest.mark.parametrize(
    ("value", "cell"),
    [(True, "true"), (False, "false"), (None, ""), (200, "200"), (0.25, "0.25"),
     ("a,b", "a,b"), ({"k": "v"}, '{"k":"v"}')],
)  # fmt: skip
def test_csv_cells(value: object, cell: str) -> None:
    assert csv_cell(value) == cell


def test_csv_writer_writes_the_record_columns_and_meta_as_json() -> None:
    stream = io.StringIO()
    writer = CsvWriter(stream)
    writer.write(result(meta={"id": 1}, etag='"x"'))
    writer.write(result(ok=False, status=None, error='boom, "quoted"\nline'))
    header, first, second = csv.reader(io.StringIO(stream.getvalue()))
    assert tuple(header) == RECORD_FIELDS and writer.written == 2
    row = dict(zip(header, first, strict=True))
    assert row["ok"] == "true" and row["status"] == "200" and row["saved_to"] == ""
    assert row["unchanged"] == "false" and row["etag"] == '"x"'
    assert json.loads(row["meta"]) == {"id": 1}
    assert dict(zip(header, second, strict=True))["error"] == 'boom, "quoted"\nline'


def test_csv_writer_carries_input_columns_as_columns_of_their_own() -> None:
    stream = io.StringIO()
    writer = CsvWriter(stream, meta_columns=["shop", "status"], record_headers=True)
    writer.write(result(meta={"shop": "A", "status": "open"}, headers={"X": "1"}))
    writer.write(result(meta=None))
    header, first, second = csv.reader(io.StringIO(stream.getvalue()))
    assert header == header_of(meta_columns=["shop", "status"], record_headers=True)
    assert header[-3:] == ["headers", "shop", "meta.status"]  # a record key's name: prefixed
    assert "meta" not in header
    assert first[-3:] == ['{"X":"1"}', "A", "open"] and second[-2:] == ["", ""]


def test_csv_writer_leaves_the_header_out_when_appending() -> None:
    stream = io.StringIO()
    CsvWriter(stream, header=False).write(result())
    assert not stream.getvalue().startswith("url,")


def _csv_file(path: Path, rows: list[Result], tail: str = "") -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = CsvWriter(handle)
        for row in rows:
            writer.write(row)
        handle.write(tail)
    return path


def test_resume_reads_a_csv_results_file(tmp_path: Path) -> None:
    out = _csv_file(tmp_path / "out.csv", [
        result(url="http://a.test/1"),
        result(url="http://a.test/2", ok=False, status=503, error="HTTP 503"),
        result(url="http://a.test/3", ok=False, status=404, error="multi\nline, error"),
    ], tail="not,a,record\n")  # fmt: skip
    check_results_file(out)
    bad: list[int] = []
    done = DoneUrls.read(out, on_bad_line=bad.append)
    assert "http://a.test/1" in done and "http://a.test/3" in done
    assert "http://a.test/2" not in done and len(done) == 2
    assert bad == [6]  # the error's line break makes record 3 two lines


def test_resume_refuses_a_csv_that_is_not_urlfleets(tmp_path: Path) -> None:
    other = tmp_path / "people.csv"
    other.write_text("name,age\nann,3\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"people\.csv:1: not a urlfleet CSV results file"):
        check_results_file(other)


# --------------------------------------------------------------------------- revalidation


def test_revalidation_takes_each_urls_last_record(tmp_path: Path) -> None:
    prev = tmp_path / "prev.jsonl"
    rows = [
        result(url="http://a.test/1", etag='"old"'),
        result(url="http://a.test/1", etag='"new"'),
        result(url="http://a.test/2", etag='"kept"'),
        result(url="http://a.test/2", ok=False, status=500, etag='"broken"'),  # last: no copy
        result(url="http://a.test/3", last_modified="Tue, 14 Nov 2023 22:13:20 GMT"),
        result(url="http://a.test/4"),
        result(url="http://u:***@a.test/5", etag='"pw"'),
    ]
    prev.write_text("".join(json.dumps(r.to_record()) + "\n" for r in rows), encoding="utf-8")
    validators = Validators.read(prev)
    assert len(validators) == 3
    assert validators.get("http://a.test/1") == ('"new"', None)
    assert validators.get("http://a.test/2") is None and validators.get("http://a.test/4") is None
    assert validators.get("http://a.test/3") == (None, "Tue, 14 Nov 2023 22:13:20 GMT")
    assert validators.get("http://u:secret@a.test/5") == ('"pw"', None)
    csv_prev = _csv_file(tmp_path / "prev.csv", rows)
    assert Validators.read(csv_prev).get("http://a.test/1") == ('"new"', None)
    assert len(Validators.read(csv_prev)) == 3


def test_revalidation_makes_requests_conditional_and_a_rows_own_win() -> None:
    validators = Validators.from_records([
        {"url": "http://a.test/1", "ok": True, "etag": '"e1"', "last_modified": None},
        {"url": "http://a.test/2", "ok": True, "etag": '"e2"'},
        {"url": "http://a.test/3", "ok": True, "etag": '"e3"'},
        {"url": "http://a.test/4", "ok": True, "etag": 'bad\r\nX-Evil: 1'},
    ])  # fmt: skip
    items = list(validators.apply([
        ("http://a.test/1", {"row": 1}),
        UrlRequest("http://a.test/2", etag='"mine"'),
        UrlRequest("http://a.test/3", method="POST", data=b"x"),
        "http://a.test/4",
        "http://a.test/other",
    ]))  # fmt: skip
    first, second, third, fourth, other = items
    assert isinstance(first, UrlRequest) and first.etag == '"e1"' and first.meta == {"row": 1}
    assert isinstance(second, UrlRequest) and second.etag == '"mine"'
    assert isinstance(third, UrlRequest) and not third.conditional
    assert fourth == "http://a.test/4" and other == "http://a.test/other"


@pytest.mark.parametrize(
    ("name", "content", "where"),
    [
        ("prev.jsonl", '{"url": "http://a.test/", "ok": true}\n{broken\n', "prev.jsonl:2:"),
        ("prev.jsonl", "\n\n[1, 2]\n", "prev.jsonl:3:"),
        ("prev.jsonl", '{"url": "http://a.test/", "ok": "yes"}\n', "prev.jsonl:1:"),
        ("prev.csv", "name,age\nann,3\n", "prev.csv:1:"),
        ("prev.csv", "url,ok\nhttp://a.test/,true\nhttp://a.test/,maybe\n", "prev.csv:3:"),
        ("prev.csv", "url,ok\nhttp://a.test/,true,extra\n", "prev.csv:2:"),
    ],
)
def test_a_bad_previous_file_is_one_line_naming_file_and_line(
    tmp_path: Path, name: str, content: str, where: str
) -> None:
    prev = tmp_path / name
    prev.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        Validators.read(prev)
    message = str(caught.value)
    assert message.startswith(f"{prev}:{where.split(':', 1)[1]}") and "\n" not in message


def test_a_missing_previous_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        Validators.read(tmp_path / "nope.jsonl")
