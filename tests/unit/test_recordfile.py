"""Records files read back for ``urlfleet report``: damaged, hostile, old and resumed ones."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from urlfleet.cli import main
from urlfleet.errors import InputError
from urlfleet.report.htmlreport import render_html
from urlfleet.report.recordfile import (
    MAX_SECONDS,
    checked,
    read_records,
    report_of_records,
    span_of,
)
from urlfleet.report.svgcharts import _tick_step
from urlfleet.report.timeline import build_timeline, thread_use


def record(url: str, start: float | None = 0.0, elapsed: float = 0.1, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"url": url, "ok": True, "status": 200, "attempts": 1,
                            "elapsed_s": elapsed, "host": "a.test", "error_kind": None}  # fmt: skip
    if start is not None:
        base["started_s"] = start
    return base | kw


def write(path: Path, lines: list[dict[str, Any] | str]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines),
                    encoding="utf-8")  # fmt: skip
    return path


def test_damaged_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", [
        record("http://a.test/1"), "{torn", "x" * 300_000, record("http://a.test/2"), "[1, 2]",
        record("http://a.test/3", elapsed="slow"), record("http://a.test/4", start=float("nan")),
        record("http://a.test/5", start=10 * MAX_SECONDS), record("http://a.test/6", attempts=True),
        record("http://a.test/7", host=["a"]), record("http://a.test/8", status=-1),
    ])  # fmt: skip
    read = read_records(path)
    assert [r["url"] for r in read.records] == ["http://a.test/1", "http://a.test/2"]
    assert (read.skipped, read.first_skipped) == (9, 2)
    assert report_of_records(read.records, malformed=read.skipped).malformed == 9


def test_a_gigantic_line_is_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with open(path, "wb") as handle:
        handle.write(json.dumps(record("http://a.test/1")).encode() + b"\n")
        handle.write(b'{"url": "' + b"a" * 64_000_000)  # no closing quote, no newline
    tracemalloc.start()
    try:
        read = read_records(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(read.records) == 1 and read.skipped == 1
    assert peak < 8_000_000, f"peak {peak} bytes reading a 64 MB line"


def test_only_the_fields_the_report_reads_are_kept() -> None:
    kept = checked(record("http://a.test/", ttfb_s=0.02, sha256="ab" * 32, meta={"x": 1}))
    assert kept is not None and "sha256" not in kept and "meta" not in kept
    assert kept["ttfb_s"] == 0.02 and kept["truncated"] is False
    assert checked(record("http://a.test/", ttfb_s=-1.0)) is None


def test_unreadable_and_foreign_files_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.jsonl: cannot read"):
        read_records(tmp_path / "missing.jsonl")
    foreign = tmp_path / "r.csv"
    foreign.write_text("name,size\nx,1\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"r\.csv:1: not a urlfleet results file"):
        read_records(foreign)


def test_old_records_without_started_s_have_no_wall_time(tmp_path: Path) -> None:
    path = write(tmp_path / "old.jsonl", [record(f"http://a.test/{i}", start=None)
                                          for i in range(5)])  # fmt: skip
    read = read_records(path)
    report = report_of_records(read.records, jobs=8, per_host=2)
    assert span_of(read.records) is None and read.resumed_at == []
    assert report.wall_s is None and report.efficiency is None and report.latency is not None
    assert report.ideal_s is not None  # the work per host is known without the clock
    assert "0.00 s" not in report.summary()


def test_a_resumed_file_lays_its_runs_end_to_end(tmp_path: Path) -> None:
    first = [record(f"http://a.test/{i}", start=i * 1.0, elapsed=0.5) for i in range(10)]
    failed = record("http://a.test/late", start=9.5, elapsed=0.4, ok=False, status=503)
    second = [record(f"http://a.test/b{i}", start=i * 0.5, elapsed=0.5) for i in range(6)]
    again = record("http://a.test/late", start=3.0, elapsed=0.2)  # the resumed run's answer
    path = write(tmp_path / "r.jsonl", [*first, failed, *second, again])
    read = read_records(path)
    assert read.resumed_at == [pytest.approx(9.9)]
    starts = [r["started_s"] for r in read.records]
    assert starts[:10] == [float(i) for i in range(10)]
    assert starts[10:] == pytest.approx([9.9 + i * 0.5 for i in range(6)] + [12.9])
    report = report_of_records(read.records, jobs=4, per_host=4)
    assert report.urls == 17 and report.failed == 0
    assert report.wall_s == pytest.approx(9.9 + 3.2)  # the second run ended at 3.2 s
    timeline = build_timeline(read.records)
    assert all(bar.start >= 0 for lane in timeline.lanes for bar in lane.bars)
    page = render_html(report, read.records, resumed_at=read.resumed_at)
    assert "come from 2 runs" in page and "resumed here" in page


def test_records_that_end_a_little_out_of_order_are_one_run(tmp_path: Path) -> None:
    lines = [record(f"http://a.test/{i}", start=i * 0.1, elapsed=0.5 if i % 2 else 0.1)
             for i in range(50)]  # fmt: skip
    assert read_records(write(tmp_path / "r.jsonl", lines)).resumed_at == []


def test_thread_use_counts_in_flight_against_the_threads() -> None:
    # 4 bins of 1 s: 2 URLs in flight in the first two, none after, on 4 threads.
    use = thread_use([2.0, 2.0, 0.0, 0.0], span_s=4.0, threads=4)
    assert use is not None and use.busy == pytest.approx(0.25) and use.idle_s == pytest.approx(12)
    after = thread_use([2.0, 2.0, 0.0, 0.0], span_s=4.0, threads=4, since=1.5)
    assert after is not None and after.busy == pytest.approx(1 / 10)  # 2 x 0.5 s of 2.5 s x 4
    assert after.idle_s == pytest.approx(9.0)
    crowded = thread_use([9.0], span_s=1.0, threads=3)  # more in flight than threads: capped
    assert crowded is not None and crowded.busy == 1.0 and crowded.idle_s == 0.0
    assert thread_use([1.0], span_s=0.0, threads=3) is None
    assert thread_use([1.0], span_s=1.0, threads=3, since=5.0) is None


def test_the_page_says_threads_busy_only_when_the_thread_count_is_known() -> None:
    records = [record(f"http://a.test/{i}", start=i * 0.1, elapsed=0.2) for i in range(40)]
    known = render_html(report_of_records(records, jobs=8, per_host=2), records)
    # 2 URLs in flight most of the time: 8 thread-seconds used of 8 x 4.1
    assert "Threads busy over the run: at most 24% of its 8 threads (at least 24.8" in known
    assert "against 8 threads" in known
    unknown = render_html(report_of_records(records), records)
    assert "Threads busy: not known" in unknown and "against" not in unknown
    assert 'id="ideal"><b>not in these records</b>' in unknown


def test_ttfb_comes_from_the_report_like_the_json() -> None:
    records = [record(f"http://a.test/{i}", ttfb_s=i / 100) for i in range(1, 101)]
    records.append(record("http://a.test/none", ok=False, status=None, error_kind="timeout"))
    report = report_of_records(records)
    assert report.ttfb is not None and report.ttfb.count == 100 and report.ttfb.p50_s == 0.51
    assert json.loads(report.to_json())["ttfb"]["p99_s"] == 1.0
    assert f"time to first byte: {report.ttfb.words()}" in render_html(report, records)


def test_the_time_axis_has_a_dozen_ticks_at_most_for_any_span() -> None:
    for span in (0.3, 7.0, 3600.0, 1e6, MAX_SECONDS * 2):
        assert span / _tick_step(span) <= 12


def test_report_command_on_old_damaged_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines: list[dict[str, Any] | str] = [record(f"http://a.test/{i}", start=None) for i in range(3)]
    path = write(tmp_path / "old.jsonl", [*lines, "{torn", "\x00" * 200_000])
    page, as_json = tmp_path / "run.html", tmp_path / "r.json"
    assert main(["report", str(path), "--html", str(page), "--report", str(as_json)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {path}:4: not a urlfleet record, skipped (and 1 more such lines)" in err
    assert "3 URLs (wall time not in these records): 3 ok" in err and "0.00 s" not in err
    assert "Traceback" not in err
    text = page.read_text(encoding="utf-8")
    assert 'id="wall"><b>not in these records</b>' in text and 'id="no-timeline"' in text
    assert json.loads(as_json.read_text(encoding="utf-8"))["wall_s"] is None
    hostile = write(tmp_path / "hostile.jsonl", ["\xff" * 10, '{"url": "x", "ok": "yes"}'])
    assert main(["report", str(hostile), "--html", str(page)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{hostile}:1: not a urlfleet record" in err
