"""The list readers for rows and sitemaps: JSON Lines, CSV/TSV, sitemap files, and the
rules they share with plain lists (FILE:LINE problems, dedup, resume, bounded reading)."""

from __future__ import annotations

import gzip
import io
import json
import threading
from pathlib import Path

import pytest

from urlfleet.errors import InputError
from urlfleet.read.formats import MAX_ROW_BYTES, format_of
from urlfleet.read.items import UrlRequest
from urlfleet.read.resume import DoneUrls
from urlfleet.read.sitemaps import MAX_DEPTH, SitemapError, SitemapInbox, SitemapItem, parse, unpack
from urlfleet.read.sources import InputProblem, UrlReader

URLSET = """<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>http://a.test/1</loc><lastmod>2024-01-02</lastmod></url>
  <url><loc> http://a.test/2?x=1&amp;y=2 </loc></url>
  <url><loc>ftp://a.test/3</loc></url>
</urlset>
"""


def read(path: Path, **options: object) -> tuple[list[object], list[str]]:
    problems: list[InputProblem] = []
    reader = UrlReader([path], on_problem=problems.append, **options)  # type: ignore[arg-type]
    return list(reader), [str(p) for p in problems]


def test_formats_come_from_the_extension() -> None:
    assert format_of("a.jsonl") == format_of("A.NDJSON") == "jsonl"
    assert (format_of("a.csv"), format_of("a.tsv")) == ("csv", "tsv")
    assert format_of("s.xml") == format_of("s.XML.gz") == "sitemap"
    assert format_of("urls.txt") == format_of("-") == format_of("list") == "lines"


def test_jsonl_rows_become_requests_and_other_keys_join_meta(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    lines = [
        {"url": "http://a.test/1", "method": "post", "headers": {"X-A": "1", "X-Gone": None},
         "data": "q=1", "etag": '"e"', "id": 7},
        {"url": "http://a.test/2", "meta": {"k": 1}, "id": 8},
        {"url": "http://a.test/3", "meta": [1, 2]},
        {"url": "http://a.test/4"},
    ]  # fmt: skip
    rows.write_text("\ufeff" + "\n".join(map(json.dumps, lines)) + "\n\n# a comment\n")
    items, problems = read(rows)
    assert problems == []
    first, second, third, fourth = items
    assert isinstance(first, UrlRequest)
    assert (first.method, first.data, first.etag, first.meta) == ("POST", b"q=1", '"e"', {"id": 7})
    assert dict(first.headers) == {"X-A": "1", "X-Gone": None}
    assert isinstance(second, UrlRequest) and second.meta == {"k": 1, "id": 8}
    assert isinstance(third, UrlRequest) and third.meta == [1, 2]  # alone, meta is as given
    assert isinstance(fourth, UrlRequest) and fourth.meta is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object (a array)"),
        ('{"method": "GET"}', "no url"),
        ('{"url": 5}', "url is a number, not a string"),
        ('{"url": "ftp://a.test/"}', "unsupported scheme 'ftp'"),
        ('{"url": "http://a.test/", "headers": ["X"]}', "headers is a array, not an object"),
        ('{"url": "http://a.test/", "headers": {"X": 1}}', "header 'X' is a number"),
        ('{"url": "http://a.test/", "headers": {"X": "a\\nb"}}', "line break in its value"),
        ('{"url": "http://a.test/", "data": {"a": 1}}', "data is a object, not a string"),
        ('{"url": "http://a.test/", "method": "G T"}', "bad method"),
        ('{"url": "http://a.test/", "meta": 3, "id": 1}', "meta is a number"),
        ('{"url": "http://a.test/", "meta": {"id": 2}, "id": 1}', "key 'id' is both"),
        ("[" * 100_000 + "]" * 100_000, "not JSON"),
    ],
)
def test_bad_jsonl_rows_are_reported_and_skipped(tmp_path: Path, line: str, reason: str) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(f'{{"url": "http://a.test/ok"}}\n{line}\n{{"url": "http://a.test/ok2"}}\n')
    items, problems = read(rows)
    assert [i.url for i in items] == ["http://a.test/ok", "http://a.test/ok2"]  # type: ignore[attr-defined]
    assert len(problems) == 1 and problems[0].startswith(f"{rows}:2: ") and reason in problems[0]


def test_a_header_value_is_never_shown_in_a_problem(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"url": "http://a.test/", "headers": {"Authorization": "s3cret\\r\\nX"}}\n')
    _, problems = read(rows)
    assert len(problems) == 1 and "s3cret" not in problems[0]


def test_jsonl_empty_huge_and_binary_inputs(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_bytes(b"")
    assert read(rows) == ([], [])
    rows.write_bytes(
        b"\x00\xff\xfe garbage\n" + b"x" * (MAX_ROW_BYTES + 10) + b'\n{"url": "http://a.test/"}\n'
    )
    items, problems = read(rows)
    assert len(items) == 1
    assert problems[0] == f"{rows}:1: not valid UTF-8"
    assert problems[1] == f"{rows}:2: line longer than {MAX_ROW_BYTES} bytes"


def test_csv_rows_carry_the_other_columns_and_number_rows_by_their_first_line(
    tmp_path: Path,
) -> None:
    listed = tmp_path / "list.csv"
    listed.write_text(
        '\ufeffname,url,note\nA,http://a.test/1,plain\n"B\nsecond line",http://a.test/2,x\n'
        'C,nope,y\nD,http://a.test/4\n\nE,http://a.test/5,"z"\n',
        encoding="utf-8",
    )
    reader = UrlReader([listed])
    reader.check()
    items, problems = read(listed)
    assert [(i.url, i.meta) for i in items] == [  # type: ignore[attr-defined]
        ("http://a.test/1", {"name": "A", "note": "plain"}),
        ("http://a.test/2", {"name": "B\nsecond line", "note": "x"}),
        ("http://a.test/5", {"name": "E", "note": "z"}),
    ]
    assert problems == [f"{listed}:5: no scheme", f"{listed}:6: 2 fields, but the header has 3"]


def test_tsv_and_a_named_url_column(tmp_path: Path) -> None:
    listed = tmp_path / "list.tsv"
    listed.write_text("link\tid\nhttp://a.test/1\t1\n")
    items, _ = read(listed, url_column="link")
    assert [(i.url, i.meta) for i in items] == [("http://a.test/1", {"id": "1"})]  # type: ignore[attr-defined]
    only_url = tmp_path / "only.csv"
    only_url.write_text("url\nhttp://a.test/1\n")
    assert [i.meta for i in read(only_url)[0]] == [None]  # type: ignore[attr-defined]


def test_a_missing_url_column_names_the_file_and_the_columns_found(tmp_path: Path) -> None:
    listed = tmp_path / "list.csv"
    listed.write_text("name,link\nA,http://a.test/\n")
    with pytest.raises(
        InputError, match=r"list.csv: no 'url' column \(the header has 'name', 'link'\)"
    ):
        UrlReader([listed]).check()
    with pytest.raises(InputError, match="no 'url' column"):
        list(UrlReader([listed]))
    twice = tmp_path / "twice.csv"
    twice.write_text("url,url\n")
    with pytest.raises(InputError, match="column 'url' appears twice"):
        UrlReader([twice]).check()


def test_csv_empty_only_a_header_and_binary(tmp_path: Path) -> None:
    listed = tmp_path / "list.csv"
    listed.write_bytes(b"")
    UrlReader([listed]).check()  # an empty list is no error
    assert read(listed) == ([], [])
    listed.write_text("url\n")
    assert read(listed) == ([], [])
    assert UrlReader([listed]).estimate() == 0
    listed.write_bytes(b"url\n\xff\xfe\x00\x01\nhttp://a.test/\n" + b'"' + b"y" * 200_000 + b'"\n')
    items, problems = read(listed)
    assert [i.url for i in items] == ["http://a.test/"]  # type: ignore[attr-defined]
    assert problems[0] == f"{listed}:2: not valid UTF-8"
    assert problems[1].startswith(f"{listed}:4: bad CSV (field larger than field limit")


def test_rows_dedupe_on_the_whole_request_not_on_meta(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    same = {"url": "http://a.test/1", "method": "POST", "data": "a"}
    lines = [same, {**same, "id": 2}, {**same, "data": "b"}, {"url": "http://a.test/1"},
             {"url": "http://a.test/1", "method": "GET"}]  # fmt: skip
    rows.write_text("\n".join(map(json.dumps, lines)))
    plain = tmp_path / "urls.txt"
    plain.write_text("http://a.test/1\n")
    reader = UrlReader([rows, plain])
    items = list(reader)
    assert [(i.method, i.data) for i in items] == [("POST", b"a"), ("POST", b"b"), (None, None)]  # type: ignore[union-attr]
    assert reader.duplicates == 3  # the same POST with other meta, the GET row, the plain URL


def test_resume_skips_rows_by_url(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text(json.dumps({"url": "http://a.test/1", "ok": True}) + "\n")
    done = DoneUrls.read(out)
    sitemap = SitemapItem("http://a.test/1", 0, SitemapInbox())
    items = [UrlRequest("http://a.test/1", method="POST"), ("http://a.test/1", 1),
             UrlRequest("http://a.test/2"), sitemap]  # fmt: skip
    skipped = [0]
    kept = list(done.skip_done(items, skipped))
    assert skipped == [2] and kept == items[2:]  # a sitemap is never skipped


def test_sitemaps_parse_with_any_namespace_and_lastmod() -> None:
    sitemap = parse(URLSET.encode())
    assert not sitemap.index
    assert [(e.line, e.loc, e.lastmod) for e in sitemap.entries] == [
        (3, "http://a.test/1", "2024-01-02"), (4, "http://a.test/2?x=1&y=2", None),
        (5, "ftp://a.test/3", None),
    ]  # fmt: skip
    prefixed = b'<s:sitemapindex xmlns:s="urn:x"><s:sitemap><s:loc>http://a.test/s</s:loc></s:sitemap></s:sitemapindex>'
    index = parse(prefixed)
    assert index.index and [e.loc for e in index.entries] == ["http://a.test/s"]
    assert [
        e.loc for e in parse(b"<urlset><url><loc>http://b.test/</loc></url></urlset>").entries
    ] == ["http://b.test/"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not well-formed XML"),
        (b"\x00\x01binary\xff", "not well-formed XML"),
        (b"<urlset><url>", "not well-formed XML"),
        (b"<html><body/></html>", "not a sitemap (the root element is <html>)"),
        (b'<!DOCTYPE u [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><urlset/>', "DOCTYPE"),
        (b'<!DOCTYPE u SYSTEM "file:///etc/passwd"><urlset/>', "DOCTYPE"),
    ],
)
def test_what_is_not_a_sitemap_says_why(content: bytes, reason: str) -> None:
    with pytest.raises(SitemapError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse(content)


def test_gzip_is_unpacked_within_the_limit_and_a_bomb_stops_there() -> None:
    assert unpack(gzip.compress(URLSET.encode()), 10_000) == URLSET.encode()
    with pytest.raises(SitemapError, match="larger than 1000 bytes once unpacked"):
        unpack(gzip.compress(b"\0" * 50_000_000), 1000)
    with pytest.raises(SitemapError, match="not valid gzip"):
        unpack(b"\x1f\x8bnot gzip at all", 1000)
    with pytest.raises(SitemapError, match="larger than 10 bytes"):
        unpack(b"x" * 11, 10)


def test_a_sitemap_keeps_at_most_max_urls_entries() -> None:
    body = (
        "<urlset>"
        + "".join(f"<url><loc>http://a.test/{i}</loc></url>" for i in range(12))
        + "</urlset>"
    )
    sitemap = parse(body.encode(), max_urls=10)
    assert len(sitemap.entries) == 10 and sitemap.dropped == 2


def test_a_sitemap_file_lists_pages_and_bad_entries_are_reported(tmp_path: Path) -> None:
    listed = tmp_path / "sitemap.xml.gz"
    listed.write_bytes(gzip.compress(URLSET.encode()))
    reader = UrlReader([listed])
    problems: list[InputProblem] = []
    reader = UrlReader([listed], on_problem=problems.append)
    items = list(reader)
    assert [(i.url, i.meta) for i in items] == [  # type: ignore[union-attr]
        ("http://a.test/1", {"sitemap": str(listed), "lastmod": "2024-01-02"}),
        ("http://a.test/2?x=1&y=2", {"sitemap": str(listed), "lastmod": None}),
    ]
    assert [str(p) for p in problems] == [
        f"{listed}:5: unsupported scheme 'ftp' (only http and https)"
    ]
    assert reader.sitemaps == 1 and reader.estimate() is None


def test_a_sitemap_file_that_is_not_one_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    listed = tmp_path / "s.xml"
    listed.write_text("<html>\n<p>hi</p>\n")
    assert read(listed) == (
        [],
        [f"{listed}:1: not read as a sitemap: not a sitemap (the root element is <html>)"],
    )


def test_an_index_file_lists_sitemaps_to_fetch_and_the_reader_waits_for_them(
    tmp_path: Path,
) -> None:
    listed = tmp_path / "index.xml"
    child = "<sitemap><loc>http://a.test/s1.xml</loc></sitemap>"
    listed.write_text(f"<sitemapindex>{child}{child}</sitemapindex>")
    reader = UrlReader([listed])
    stream = iter(reader)
    child = next(stream)
    assert isinstance(child, SitemapItem) and child.depth == 1
    assert child.meta == {"sitemap": str(listed)}
    child.inbox.expect()  # as a run does when it makes the job

    def fetched() -> None:
        child.inbox.deliver(child, parse(b"<urlset><url><loc>http://a.test/p</loc></url></urlset>"))

    threading.Timer(0.05, fetched).start()
    rest = list(stream)  # waits for the child, then ends: the listed-twice child is dropped
    assert [i.url for i in rest] == ["http://a.test/p"]  # type: ignore[union-attr]
    assert rest[0].meta == {"sitemap": "http://a.test/s1.xml", "lastmod": None}  # type: ignore[union-attr]
    assert reader.duplicates == 1 and reader.sitemaps == 2


def test_a_closed_inbox_ends_a_waiting_reader(tmp_path: Path) -> None:
    listed = tmp_path / "index.xml"
    listed.write_text(
        "<sitemapindex><sitemap><loc>http://a.test/s.xml</loc></sitemap></sitemapindex>"
    )
    stream = iter(UrlReader([listed]))
    child = next(stream)
    assert isinstance(child, SitemapItem)
    child.inbox.expect()
    threading.Timer(0.05, child.inbox.close).start()
    assert list(stream) == []


def test_indexes_nested_too_deep_are_reported_not_fetched() -> None:
    problems: list[InputProblem] = []
    reader = UrlReader(["-"], stdin=io.BytesIO(b""), on_problem=problems.append)
    inbox = SitemapInbox()
    deep = SitemapItem("http://a.test/deep.xml", MAX_DEPTH, inbox)
    index = parse(
        b"<sitemapindex><sitemap><loc>http://a.test/more.xml</loc></sitemap></sitemapindex>"
    )
    assert list(reader._listed(deep, index, inbox)) == []
    assert "nested more than 3 deep" in str(problems[0])


def test_a_url_argument_is_a_sitemap_by_extension_or_format(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="give --input-format sitemap"):
        UrlReader(["http://a.test/sitemaps?page=1"]).check()
    UrlReader(["http://a.test/sitemap.xml.gz"]).check()  # the extension says so already
    reader = UrlReader(["http://a.test/sitemaps?page=1"], input_format="sitemap")
    reader.check()
    assert reader.files() == [] and reader.estimate() is None
    (item,) = list(reader)  # no run made its job: nothing to wait for
    assert isinstance(item, SitemapItem) and item.depth == 0
    with pytest.raises(InputError, match="--input-format"):
        UrlReader(["x"], input_format="xml")


def test_stdin_takes_any_format() -> None:
    data = io.BytesIO(b'{"url": "http://a.test/"}\n')
    (item,) = list(UrlReader(["-"], stdin=data, input_format="jsonl"))
    assert isinstance(item, UrlRequest) and item.url == "http://a.test/"


def test_a_directory_still_means_its_txt_files(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("http://a.test/1\n")
    (tmp_path / "results.jsonl").write_text('{"url": "http://a.test/2"}\n')
    assert list(UrlReader([tmp_path])) == ["http://a.test/1"]
