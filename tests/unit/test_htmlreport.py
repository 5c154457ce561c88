"""The HTML report's layout and aggregation math, on synthetic records (no run, no browser)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from urlfleet.cli import main
from urlfleet.config import FetchConfig
from urlfleet.errors import InputError
from urlfleet.report.cpu import CpuUse
from urlfleet.report.htmlreport import bottleneck_words, pace_setter, render_html
from urlfleet.report.recordfile import read_records, report_of_records, result_of
from urlfleet.report.runstats import LatencySample, latency_of, quantile, status_label, status_words
from urlfleet.report.summary import Report, build_report
from urlfleet.report.tally import Phase, Tally
from urlfleet.report.timeline import MAX_LANES, RecordSample, build_timeline, histogram, outcome_of


def record(host: str = "a.test", start: float | None = 0.0, elapsed: float = 0.1,
           **kw: Any) -> dict[str, Any]:  # fmt: skip
    base: dict[str, Any] = {"url": f"http://{host}/{start}/{elapsed}/{kw}", "ok": True,
                            "status": 200, "attempts": 1, "elapsed_s": elapsed, "host": host,
                            "error_kind": None}  # fmt: skip
    if start is not None:
        base["started_s"] = start
    base.update(kw)
    return base


def report_of(records: list[dict[str, Any]], *, jobs: int = 4, per_host: int = 2) -> Report:
    return report_of_records(records, jobs=jobs, per_host=per_host)


def test_quantiles_are_nearest_rank_and_max_is_exact() -> None:
    values = [float(i) for i in range(1, 101)]  # 1..100
    assert quantile(values, 0.5) == 51 and quantile(values, 0.99) == 100
    assert quantile([], 0.5) is None
    lat = latency_of(values[:10], largest=500.0)
    assert lat is not None and (lat.p50_s, lat.p90_s, lat.max_s) == (6, 10, 500)
    assert lat.words() == "p50 6.000 s, p90 10.000 s, p99 10.000 s, max 500.000 s"
    sample = LatencySample(kept=10)
    for value in range(1000):
        sample.add(value / 1000)
    assert len(sample.values) == 10 and sample.largest == 0.999 and sample.seen == 1000


def test_status_breakdown_puts_statuses_first_then_error_kinds() -> None:
    assert status_label(503, "http") == "503" and status_label(None, "timeout") == "timeout"
    assert status_label(None, None) == "no answer"
    assert status_words({"timeout": 3, "200": 380, "429": 12}) == "200: 380, 429: 12, timeout: 3"


def test_outcomes_are_told_apart() -> None:
    assert outcome_of(record()) == "ok"
    assert outcome_of(record(attempts=3)) == "retried"
    assert outcome_of(record(ok=False, status=429)) == "throttled"
    assert outcome_of(record(ok=False, status=404)) == "failed"
    assert outcome_of(record(ok=False, truncated=True)) == "cut-off"


def test_overlapping_bars_stack_in_rows_and_a_free_row_is_reused() -> None:
    bars = [record(start=0.0, elapsed=1.0), record(start=0.5, elapsed=1.0),
            record(start=1.0, elapsed=0.2), record(start=1.6, elapsed=0.1)]  # fmt: skip
    lane = build_timeline(bars).lanes[0]
    assert [bar.row for bar in lane.bars] == [0, 1, 0, 0] and lane.rows == 2
    assert (lane.first, lane.last) == (0.0, pytest.approx(1.7))


def test_lanes_are_the_busiest_hosts_and_the_rest_are_summed() -> None:
    records = [record(host=f"h{i}.test", start=0.0, elapsed=1.0 + i) for i in range(MAX_LANES + 5)]
    lanes = build_timeline(records).lanes
    assert len(lanes) == MAX_LANES + 1
    assert lanes[0].name == f"h{MAX_LANES + 4}.test"  # the busiest first
    assert lanes[-1].name == "5 other hosts" and lanes[-1].hosts == 5 and len(lanes[-1].bars) == 5


def test_throughput_and_in_flight_per_bin() -> None:
    # Two URLs in flight for the first half, none in the second; both finish in bin 4 of 10.
    records = [record(start=0.0, elapsed=0.5), record(host="b.test", start=0.0, elapsed=0.5),
               record(host="c.test", start=0.9, elapsed=0.1)]  # fmt: skip
    timeline = build_timeline(records, bins=10)
    assert timeline.span_s == 1.0
    assert timeline.in_flight[:5] == pytest.approx([2.0] * 5)
    assert timeline.in_flight[5:9] == pytest.approx([0.0] * 4)
    assert timeline.throughput[5] == pytest.approx(20.0)  # 2 URLs in a 0.1 s bin
    assert sum(c * 0.1 for c in timeline.throughput) == pytest.approx(3)


def test_too_many_bars_are_drawn_as_density() -> None:
    records = [record(start=i / 100, elapsed=0.05) for i in range(500)]
    lane = build_timeline(records, max_bars=100, bins=20).lanes[0]
    assert lane.bars == [] and lane.dense is not None and len(lane.dense) == 20


def test_histogram_puts_the_tail_in_the_last_bin() -> None:
    assert histogram([0.0, 0.05, 0.5, 9.0], bins=4, top=1.0) == [2, 0, 1, 1]


def test_records_without_started_s_give_no_bars_no_wall_time_and_a_note() -> None:
    records = [record(start=None), record(start=None, host="b.test")]
    report = report_of(records)
    assert build_timeline(records).timed == 0
    page = render_html(report, records)
    assert 'id="no-timeline"' in page and "no started_s" in page
    assert report.efficiency is None and report.wall_s is None and report.requests_per_s is None
    assert 'id="wall"><b>not in these records</b>' in page and "0.00 s" not in page
    summary = report.summary()
    assert summary.startswith("2 URLs (wall time not in these records): 2 ok")
    assert json.loads(report.to_json())["wall_s"] is None


def test_a_ten_thousand_url_page_stays_under_two_megabytes() -> None:
    records = [record(host=f"h{i % 300}.test", start=i * 0.01, elapsed=0.1 + (i % 7) / 10,
                      attempts=1 + (i % 50 == 0), status=200 if i % 97 else 503,
                      ok=bool(i % 97), ttfb_s=0.05)
               for i in range(10_000)]  # fmt: skip
    page = render_html(report_of(records), records)
    assert len(page.encode("utf-8")) < 2_000_000
    lanes = re.findall(r'<g class="lane[^"]*" data-host="([^"]+)"', page)
    assert len(lanes) == MAX_LANES + 1 and lanes[-1] == f"{300 - MAX_LANES} other hosts"
    assert "time to first byte: p50 0.050 s" in page


def test_the_page_has_no_external_resource() -> None:
    records = [record(host="a.test", start=0.0), record(host="b.test", start=0.2, attempts=2)]
    page = render_html(report_of(records), records)
    assert not re.search(r"""(src|href)\s*=|<link|@import|url\((?!#)""", page)


def test_the_page_and_the_summary_say_the_same_numbers() -> None:
    records = [record(start=i / 10, elapsed=0.1 * (1 + i % 10)) for i in range(100)]
    records.append(record(host="b.test", ok=False, status=None, error_kind="timeout", start=1.0))
    report = report_of(records)
    assert report.latency is not None and report.statuses == {"200": 100, "timeout": 1}
    page, summary = render_html(report, records), report.summary()
    for words in (report.latency.words(), "200: 100, timeout: 1"):
        assert words in page and words in summary
    assert json.loads(report.to_json())["latency"]["p99_s"] == report.latency.p99_s


def test_a_live_runs_tally_gives_the_same_quantiles_as_its_records() -> None:
    records = [record(start=i / 10, elapsed=0.01 * (i % 13), host=f"h{i % 3}") for i in range(60)]
    tally = Tally()
    for item in records:
        tally.add(result_of(item))
    live = build_report([Phase("threaded", 4, 6.0, tally)], FetchConfig(per_host=2))
    assert live.latency == report_of(records).latency
    assert [r.host for r in live.hosts] == [r.host for r in report_of(records).hosts]


def test_bottleneck_in_words() -> None:
    records = [record(start=i * 0.1, host="slow.test", elapsed=1.0) for i in range(20)]
    records += [record(start=0.0, host="fast.test", elapsed=0.01)]
    report = report_of(records, jobs=64, per_host=1)
    assert report.bottleneck == "politeness towards slow.test"
    pace = pace_setter(report, build_timeline(records))
    assert pace == "slow.test"
    assert "Politeness towards slow.test set the pace" in bottleneck_words(report, None, pace)
    assert report.wall_s is not None
    fast = replace(report, ideal_s=report.wall_s / 4)  # a run the CPU held back, not a host
    wall = report.wall_s * 10  # long enough for starting processes to pay
    busy = CpuUse(wall_s=wall, cpu_s=wall * 0.95, cores=2, hosts=2)
    busy_cpu = bottleneck_words(replace(fast, wall_s=wall, ideal_s=wall / 4), busy, pace)
    assert busy_cpu == ("Client CPU was the bottleneck: 95% of one core in 1 process; "
                        "--processes 2 (this machine's cores) would help; more threads cannot "
                        "help.")  # fmt: skip
    page = render_html(replace(fast, wall_s=wall, ideal_s=wall / 4), records, cpu=busy)
    assert "--processes 2 (this machine&#x27;s cores) would help" in page
    on_both = replace(busy, processes=2, cpu_s=0.1 * wall, worker_cpu_s=1.8 * wall)
    assert "already 2 processes on 2 cores" in bottleneck_words(fast, on_both, pace)
    idle = replace(busy, cpu_s=wall * 0.3)  # not CPU-bound: what held it back is said instead
    assert "Politeness towards slow.test set the pace" in bottleneck_words(report, idle, pace)
    threads = report_of(records, jobs=1, per_host=64)
    assert "thread count (--jobs 1)" in bottleneck_words(threads, None, None)


def test_the_pace_setter_lane_is_marked_and_every_host_has_a_lane() -> None:
    records = [record(start=i * 0.1, host="slow.test", elapsed=1.0) for i in range(20)]
    records += [record(start=0.0, host="fast.test", elapsed=0.01, attempts=2)]
    page = render_html(report_of(records, jobs=64, per_host=1), records)
    assert '<g class="lane pace" data-host="slow.test">' in page
    assert 'data-host="fast.test"' in page and "slow.test ◀ set the pace" in page


def test_read_records_keeps_the_last_record_of_a_url(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    first = record(ok=False, status=503, url="http://a.test/x")
    lines = [first, record(url="http://b.test/y"), {**first, "ok": True, "status": 200}]
    path.write_text("".join(json.dumps(item) + "\n" for item in lines) + "\n", encoding="utf-8")
    records = read_records(path).records
    assert [(r["url"], r["ok"]) for r in records] == [("http://b.test/y", True),
                                                      ("http://a.test/x", True)]  # fmt: skip


def test_a_file_without_a_record_is_named_by_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text("\n{torn\n" + json.dumps({"url": 1, "ok": True}) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"r\.jsonl:2: not a urlfleet record"):
        read_records(path)


def test_report_command_exits_2_on_a_bad_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text("not json\n", encoding="utf-8")
    assert main(["report", str(path), "--html", str(tmp_path / "run.html")]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and f"{path}:1:" in err
    assert not (tmp_path / "run.html").exists()


def test_report_command_writes_the_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, page = tmp_path / "r.jsonl", tmp_path / "run.html"
    path.write_text("".join(json.dumps(record(start=i / 10)) + "\n" for i in range(5)), "utf-8")
    assert main(["report", str(path), "--html", str(page), "-j", "4", "--per-host", "2"]) == 0
    assert 'data-host="a.test"' in page.read_text(encoding="utf-8")
    assert "p50" in capsys.readouterr().err
    assert main(["report", str(path), "--per-host", "0"]) == 2


def test_a_long_run_keeps_a_bounded_fair_sample_for_its_page() -> None:
    sample = RecordSample(kept=100)
    for i in range(10_000):
        sample.add(record(start=float(i)))
    assert sample.seen == 10_000 and len(sample.records) == 100
    assert max(r["started_s"] for r in sample.records) > 1000  # later records get in too
    page = render_html(report_of(sample.records), sample.records, sampled_of=sample.seen)
    assert "a fair sample of 100 of the 10000 URLs" in page


def test_fetch_refuses_an_html_path_that_is_its_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listed = tmp_path / "urls.txt"
    listed.write_text("http://a.test/\n", encoding="utf-8")
    assert main(["fetch", str(listed), "--html", str(listed), "--no-progress"]) == 2
    assert "--html" in capsys.readouterr().err
    assert listed.read_text(encoding="utf-8") == "http://a.test/\n"
    assert main(["fetch", str(listed), "--html", str(tmp_path), "--no-progress"]) == 2
    assert "Is a directory" in capsys.readouterr().err
