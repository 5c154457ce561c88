"""What stays bounded however many URLs and hosts a list has."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from urlfleet import politeness
from urlfleet.config import FetchConfig
from urlfleet.errors import InputError
from urlfleet.fetching import adapter
from urlfleet.politeness import Politeness, RobotsAnswer
from urlfleet.read.dedup import DigestSet
from urlfleet.read.resume import _sorted_array
from urlfleet.read.sources import UrlReader
from urlfleet.record.records import Result
from urlfleet.report.summary import build_report
from urlfleet.report.tally import HostTallies, Phase, Tally

DIGESTS = st.integers(0, 2**64 - 1) | st.integers(0, 50) | st.integers(2**63, 2**63 + 50)


@given(st.lists(DIGESTS))
def test_digest_set_is_a_set(digests: list[int]) -> None:
    seen, expected = DigestSet(slots=1), set()
    for digest in digests:
        assert seen.add(digest) == ((digest or 1) not in expected)
        expected.add(digest or 1)
    assert len(seen) == len(expected)
    assert all(d in seen for d in expected)


def test_digest_set_grows_to_about_16_bytes_a_digest() -> None:
    rng = random.Random(1)
    seen = DigestSet()
    digests = [rng.getrandbits(64) for _ in range(100_000)]
    assert all(seen.add(d) for d in digests) and not any(seen.add(d) for d in digests[:1000])
    assert len(seen) == 100_000 and 8 * 100_000 / 0.75 <= seen.nbytes <= 16 * 100_000 / 0.75
    assert rng.getrandbits(64) not in seen


def test_the_reader_still_drops_duplicates(tmp_path: object) -> None:
    from pathlib import Path

    listed = Path(str(tmp_path)) / "urls.txt"
    urls = [f"http://h{i % 3000}.test/{i % 7}" for i in range(30_000)]
    listed.write_text("\n".join(urls) + "\n", encoding="utf-8")
    reader = UrlReader([listed])
    read = list(reader)
    assert read == list(dict.fromkeys(urls)) and reader.duplicates == 30_000 - len(read)


def test_done_digests_are_sorted_in_runs_and_merged() -> None:
    rng = random.Random(2)
    digests = [rng.getrandbits(64) for _ in range(10_000)]
    assert list(_sorted_array(digests, run=999)) == sorted(digests)
    assert list(_sorted_array([], run=4)) == []


def result(host: str, busy: float) -> Result:
    return Result(url=f"http://{host}/", ok=True, status=200, error=None, attempts=1, bytes=0,
                  host=host, requests=1,
                  busy_s=busy, started=1.0, elapsed_s=busy)  # fmt: skip


def test_host_tallies_keep_the_busiest_exactly_and_fold_the_rest() -> None:
    tallies = HostTallies(kept=10)
    for round_ in range(3):
        for hot in range(5):
            tallies.add(result(f"hot{hot}.test", 10.0))
        for i in range(1000):
            tallies.add(result(f"cold{round_}-{i}.test", 0.001))
    assert len(tallies) <= 20 and tallies.folded > 0
    for hot in range(5):
        assert tallies[f"hot{hot}.test"].urls == 3
    kept = sum(t.urls for _, t in tallies.items())
    assert kept + tallies.others.urls == 3 * 1005


def test_the_report_over_many_hosts_has_exact_totals_and_the_busiest_first() -> None:
    tally = Tally()
    for i in range(5000):
        tally.add(result(f"h{i}.test", 0.001))
    for _ in range(7):
        tally.add(result("busy.test", 1.0))
    report = build_report([Phase("threaded", 8, 10.0, tally)], FetchConfig())
    assert (report.urls, report.ok, report.requests) == (5007, 5007, 5007)
    assert report.hosts[0].host == "busy.test" and report.hosts[0].requests == 7
    assert len(tally.hosts) <= 2000


def test_robots_verdicts_are_kept_for_so_many_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(politeness, "ROBOTS_KEPT", 100)
    rules = Politeness(FetchConfig(robots=True))
    body = b"User-agent: *\nCrawl-delay: 3\n"
    states = [rules.host(f"h{i}.test:80") for i in range(300)]
    for state in states:
        rules.learn_robots(state, RobotsAnswer(200, body))
    assert len(rules._robots) == 100 and "h299.test:80" in rules._robots
    # A dropped verdict still holds for the state that has it.
    assert rules._floor(states[0].key, states[0].robots) == 3.0


def test_a_forgotten_hosts_adaptive_pace_is_kept_for_its_next_state() -> None:
    rules = Politeness(FetchConfig(auto_throttle=True))
    state = rules.host("a.test:80")
    state.limits = type(state.limits)(state.limits.per_host, 0.4)
    assert not rules.idle(state, 100.0) and rules.forget(state, 100.0)
    assert rules.host("a.test:80").limits.delay == 0.4


def test_pools_shrink_to_the_open_files_limit() -> None:
    config = FetchConfig(jobs=64, per_host=8)
    assert adapter.pooled_hosts(config, 8, None) == adapter.POOLED_HOSTS
    assert adapter.pooled_hosts(config, 8, 1 << 20) == adapter.POOLED_HOSTS
    assert adapter.pooled_hosts(config, 8, 256) == (256 - 64 - 64) // 8
    assert adapter.pooled_hosts(config, 8, 100) == 1
    with pytest.raises(InputError, match="too few file descriptors"):
        adapter.pooled_hosts(config, 8, 70)
