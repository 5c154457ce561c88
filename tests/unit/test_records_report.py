from __future__ import annotations

import io
import json
import pickle
from dataclasses import FrozenInstanceError, replace
from types import ModuleType

import pytest

import urlfleet
from urlfleet.config import FetchConfig, HostLimits
from urlfleet.record.records import RECORD_FIELDS, JsonlWriter, Result, record_field_names
from urlfleet.report.summary import (
    REPORT_FIELDS,
    Phase,
    Tally,
    build_report,
    ideal_time,
    speedup_of,
)

CONTRACT_RECORD = ("url", "ok", "status", "error", "attempts", "elapsed_s", "bytes", "host",
                   "final_url", "saved_to")  # fmt: skip
CONTRACT_REPORT = ("urls", "ok", "failed", "wall_s", "serial_s_per_url", "threaded_s_per_url",
                   "speedup", "jobs", "per_host", "delay")  # fmt: skip


def result(**kw: object) -> Result:
    base: dict[str, object] = dict(url="http://a.test/", ok=True, status=200, error=None,
                                   attempts=1, elapsed_s=0.1, bytes=5, host="a.test")  # fmt: skip
    base.update(kw)
    return Result(**base)  # type: ignore[arg-type]


def test_record_keys_start_with_the_contract_in_order() -> None:
    assert RECORD_FIELDS[: len(CONTRACT_RECORD)] == CONTRACT_RECORD
    assert record_field_names()[: len(RECORD_FIELDS)] == RECORD_FIELDS
    assert tuple(result().to_record())[: len(CONTRACT_RECORD)] == CONTRACT_RECORD


def test_jsonl_writer_writes_whole_lines() -> None:
    stream = io.StringIO()
    writer = JsonlWriter(stream)
    writer.write(result(url="http://a.test/ü"))
    writer.write(result(ok=False, status=404, error="HTTP 404"))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and writer.written == 2
    assert json.loads(lines[0])["url"] == "http://a.test/ü"
    assert json.loads(lines[1])["error"] == "HTTP 404"


def test_result_text_uses_declared_charset() -> None:
    latin = result(content="café".encode("latin-1"),
                   headers={"Content-Type": "text/html; charset=ISO-8859-1"})  # fmt: skip
    assert latin.text == "café"
    assert result(content=b'{"a": 1}').json() == {"a": 1}


def test_config_is_frozen_and_validated() -> None:
    config = FetchConfig(jobs=64)
    with pytest.raises(FrozenInstanceError):
        config.jobs = 2  # type: ignore[misc]
    with pytest.raises(ValueError, match="per_host"):
        FetchConfig(per_host=0)
    with pytest.raises(ValueError, match="jobs"):
        replace(config, jobs=0)
    with pytest.raises(ValueError, match="delay"):
        FetchConfig(delay=-1)


def test_config_pickles_with_the_standard_library() -> None:
    config = FetchConfig(jobs=8, headers={"X-A": "1"}, host_limits={"a.test": (1, 0.5)})
    copy = pickle.loads(pickle.dumps(config))
    assert copy == config and copy.host_limits["a.test"] == HostLimits(1, 0.5)


def test_make_config_rejects_unknown_options() -> None:
    with pytest.raises(TypeError, match="unknown option"):
        urlfleet.make_config(job=3)
    assert urlfleet.make_config(jobs=3).jobs == 3


def tally_of(results: list[Result]) -> Tally:
    tally = Tally()
    for r in results:
        tally.add(r)
    return tally


def test_report_keys_and_speedup_arithmetic() -> None:
    serial = tally_of([result(requests=1, busy_s=0.1) for _ in range(10)])
    threaded = tally_of(
        [result(requests=1, busy_s=0.1) for _ in range(90)]
        + [result(ok=False, status=503, error="HTTP 503", requests=4, busy_s=0.4)]
    )
    phases = [Phase("serial", 1, 1.0, serial), Phase("threaded", 32, 0.5, threaded)]
    report = build_report(phases, FetchConfig(jobs=32, per_host=4))
    data = json.loads(report.to_json())
    assert tuple(data)[: len(CONTRACT_REPORT)] == CONTRACT_REPORT == REPORT_FIELDS
    assert (report.urls, report.ok, report.failed) == (101, 100, 1)
    assert report.serial_s_per_url == pytest.approx(0.1)
    assert report.threaded_s_per_url == pytest.approx(0.5 / 91)
    assert report.speedup == pytest.approx(0.1 / (0.5 / 91))
    assert report.serial_estimate_s == pytest.approx(0.1 * 101)
    assert report.failures == {"HTTP 503": 1}
    assert "speedup" in report.summary()


def test_speedup_needs_both_measurements() -> None:
    assert speedup_of(None, 0.1) is None and speedup_of(0.2, 0.1) == pytest.approx(2)


def test_ideal_names_the_bottleneck() -> None:
    even = tally_of([result(host=f"h{i % 10}", requests=1, busy_s=0.1) for i in range(100)])
    ideal = ideal_time(even, threads=5, per_host=4, gap=0.0)
    assert ideal is not None and ideal.seconds == pytest.approx(100 * 0.1 / 5)
    assert ideal.bottleneck == "--jobs 5"
    hot = tally_of([result(host="hot", requests=1, busy_s=0.1) for _ in range(50)])
    ideal = ideal_time(hot, threads=64, per_host=2, gap=0.0)
    assert ideal is not None and ideal.seconds == pytest.approx(50 * 0.1 / 2)
    assert ideal.bottleneck == "politeness towards hot"
    ideal = ideal_time(hot, threads=64, per_host=2, gap=1.0)
    assert ideal is not None and ideal.seconds == pytest.approx(50.0)


def test_public_names_are_exactly_all() -> None:
    public = {
        name
        for name in dir(urlfleet)
        if not name.startswith("_") and not isinstance(getattr(urlfleet, name), ModuleType)
    }
    assert set(urlfleet.__all__) - {"__version__"} == public
    assert urlfleet.__all__ == sorted(urlfleet.__all__)


def test_failures_are_counted_by_their_kind() -> None:
    from urlfleet.report.tally import failure_kind

    def failed(**fields: object) -> Result:
        base: dict[str, object] = {"url": "http://a.test/", "ok": False, "status": None,
                                   "error": "x", "attempts": 1, "elapsed_s": 0.0, "bytes": 0,
                                   "host": "a.test"}  # fmt: skip
        return Result(**{**base, **fields})  # type: ignore[arg-type]

    deadline = failed(status=200, error="no complete response within --max-time 1 s",
                      error_kind="deadline")  # fmt: skip
    cut = failed(error="host cut off after 10 failures in a row (ConnectionError: x)",
                 error_kind="cut-off")  # fmt: skip
    assert failure_kind(deadline) == "deadline"  # not "HTTP 200"
    assert failure_kind(cut) == "cut-off"
    assert failure_kind(failed(status=404, error="HTTP 404", error_kind="http")) == "HTTP 404"
