"""Fetching on dask.distributed: two worker processes against the loopback server.

Politeness is checked from the server's side, as everywhere: a host must never see more than
per_host requests at once, nor two starts closer than delay, whichever workers sent them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from distributed import Client

import urlfleet
import urlfleet.distributed.client
from tests.conftest import SERVER_SLACK
from urlfleet.api import make_config
from urlfleet.distributed import (
    ClusterRun,
    Shard,
    ShardPlan,
    client_for,
    fetch_distributed,
    host_group,
    key_group,
)
from urlfleet.errors import ClusterError, InputError
from urlfleet.loopback import LoopbackProcess, RequestRecord, ServerSpec, host_loads
from urlfleet.politeness.shards import HostMemories
from urlfleet.record.records import Result
from urlfleet.run.runner import Run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    client, close = client_for("local:2")
    try:
        yield client
    finally:
        close()


@pytest.fixture(scope="module")
def many() -> Iterator[LoopbackProcess]:
    """21 hosts: more than a shard's worth of groups; the first has a robots.txt."""
    robots = ((0, 200, "User-agent: *\nDisallow: /private\nCrawl-delay: 0.3\n"),)
    with LoopbackProcess(ServerSpec(hosts=21, latency=0.05, robots=robots)) as process:
        yield process


@pytest.fixture
def token() -> str:
    return uuid.uuid4().hex[:12]


def key(base: str) -> str:
    return base.removeprefix("http://")


def fetch(client: Client, urls: list[Any], shard_size: int, **options: Any) -> list[Result]:
    config = make_config(keep_content=False, backoff=0.01, **options)
    return list(fetch_distributed(urls, config, client=client, shard_size=shard_size))


def span(log: list[RequestRecord], hosts: set[str]) -> float:
    return max(r.finished for r in log if r.host in hosts)


# -- the plan, in-process ------------------------------------------------------------------


def test_host_groups_are_stable_and_ignore_case_and_path() -> None:
    assert host_group("http://Example.com/a") == host_group("http://example.COM:80/b?c")
    # blake2b, not hash(): the same number in every process, whatever PYTHONHASHSEED says
    assert host_group("http://example.com/", 4096) == 1638


def test_a_group_is_in_one_shard_at_a_time_and_every_url_in_one_shard() -> None:
    urls = [f"http://h{i % 7}.test/{i}" for i in range(100)] + [("bad url", "meta")]
    plan = ShardPlan(urls, shard_size=9)
    running: list[Shard] = []
    handed: Counter[int] = Counter()
    while True:  # three workers: fill the free ones, then the oldest shard ends
        while len(running) < 3 and (shard := plan.next_shard(share=3 - len(running))):
            held = {group for other in running for group in other.groups}
            assert len(shard.urls) <= 9 and not held & shard.groups
            assert {host_group(url) for url in shard.urls} <= shard.groups
            handed.update(shard.indexes)
            running.append(shard)
        if not running:
            break
        plan.release(running.pop(0))
    assert handed == Counter(range(101))


def test_a_group_goes_again_one_gap_after_its_shard_came_back() -> None:
    now = [100.0]
    urls = [f"http://a.test/{i}" for i in range(4)] + ["http://b.test/1"]
    plan = ShardPlan(urls, shard_size=2, clock=lambda: now[0])
    rules = HostMemories(make_config(delay=0.495), group=key_group, clock=lambda: now[0])
    first = plan.next_shard(share=2)  # the largest group first; the other for worker 2
    assert first is not None and first.urls == urls[:2] and first.wait == 0
    plan.release(first, hold=rules.waits(first.groups, first.hosts()))  # 0.5 s with the margin
    now[0] += 0.2
    second = plan.next_shard()  # only b.test's group has no gap to wait out
    assert second is not None and second.urls == urls[4:] and second.wait == 0
    third = plan.next_shard()  # nothing else is left: a.test's, 0.3 s from now
    assert third is not None and third.urls == urls[2:4] and third.wait == pytest.approx(0.3)
    assert plan.next_shard() is None


def test_a_remembered_pause_holds_its_group_back_and_idle_groups_go_first() -> None:
    now = [100.0]
    urls = [f"http://a.test/{i}" for i in range(4)] + ["http://b.test/1"]
    plan = ShardPlan(urls, shard_size=2, clock=lambda: now[0])
    first = plan.next_shard(share=2)
    assert first is not None and first.urls == urls[:2]
    plan.release(first, hold={host_group(urls[0]): 5.0, host_group(urls[4]): 9.0})
    second = plan.next_shard()  # b.test's group was not in that shard: its hold is not its
    assert second is not None and second.urls == urls[4:] and second.wait == 0
    now[0] += 1.0
    third = plan.next_shard()
    assert third is not None and third.urls == urls[2:4] and third.wait == pytest.approx(4.0)


def test_the_list_is_read_a_window_ahead_and_lost_urls_go_first() -> None:
    read: list[int] = []

    def listing() -> Iterator[str]:
        for i in range(50):
            read.append(i)
            yield f"http://h{i % 2}.test/{i}"

    plan = ShardPlan(listing(), shard_size=4, window=10)
    first = plan.next_shard()
    assert first is not None and len(read) == 10 and plan.queued == 6
    plan.release(first, unsent=first.items([2, 3]))  # two never came back: they go again first
    second = plan.next_shard()
    assert second is not None and second.indexes[:2] == first.indexes[2:]
    assert len(read) == 12 and plan.queued == 6  # read on up to the window as shards go


def test_bad_address_and_missing_dask_are_input_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="local:N"):
        client_for("local:zero")
    with pytest.raises(InputError, match="tcp://HOST:PORT"):
        client_for("127.0.0.1:8786")
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(InputError, match=r"install urlfleet\[dask\]"):
        client_for("local:2")


# -- a real cluster ----------------------------------------------------------------------------


def test_one_record_per_url_with_statuses(
    client: Client, server: LoopbackProcess, token: str
) -> None:
    base = server.base_urls[0]
    urls: list[Any] = [f"{b}/page/{token}/{i}" for i in range(8) for b in server.base_urls[:4]]
    urls += [f"{base}/status/404/{token}", f"{base}/flaky/1/{token}", "not a url"]
    urls.append((f"{server.base_urls[1]}/page/{token}/with-meta", {"id": 7}))
    results = fetch(client, urls, shard_size=5, jobs=8, per_host=2)
    assert sorted(r.index for r in results) == list(range(len(urls)))
    by_index = {r.index: r for r in results}
    assert all(by_index[i].ok and by_index[i].status == 200 for i in range(32))
    assert (by_index[32].status, by_index[32].ok) == (404, False)
    assert by_index[33].ok and by_index[33].attempts == 2
    assert by_index[34].error is not None and by_index[34].error.startswith("invalid URL")
    assert by_index[35].ok and by_index[35].meta == {"id": 7}
    assert all(r.content == b"" and r.bytes > 0 for r in results if r.ok)


def test_per_host_holds_across_shards_and_workers(
    client: Client, server: LoopbackProcess, token: str
) -> None:
    # 16 URLs per host, 4 per shard: every host runs in 4+ shards, on both workers; two
    # shards of one host at once would show up to 4 requests in flight.
    hosts = server.base_urls[:3]
    urls = [f"{b}/page/{token}/{i}?latency=0.1" for i in range(16) for b in hosts]
    results = fetch(client, urls, shard_size=4, jobs=8, per_host=2)
    assert len(results) == len(urls) and all(r.ok for r in results)
    loads = host_loads(server.records(contains=token))
    assert {load.requests for load in loads.values()} == {16}
    assert max(load.max_in_flight for load in loads.values()) == 2


def test_delay_holds_across_shards_and_workers(
    client: Client, server: LoopbackProcess, token: str
) -> None:
    # Requests take 10 ms and may start every 150 ms. A shard that did not wait for the gap
    # after its group's last shard would start 10-50 ms after that shard's last request.
    hosts = server.base_urls[:3]
    urls = [f"{b}/page/{token}/{i}?latency=0.01" for i in range(12) for b in hosts]
    results = fetch(client, urls, shard_size=4, jobs=8, per_host=2, delay=0.15)
    assert len(results) == len(urls) and all(r.ok for r in results)
    loads = host_loads(server.records(contains=token))
    assert {load.requests for load in loads.values()} == {12}
    # The server stamps arrivals; on a busy 2-core machine a request can reach it up to
    # ~20 ms after the client let it go (one process alone shows the same), hence the slack.
    assert min(load.min_gap for load in loads.values()) >= 0.15 - SERVER_SLACK


def test_a_hot_host_does_not_hold_up_the_others(
    client: Client, server: LoopbackProcess, token: str
) -> None:
    # The hot host's block comes first: 60 URLs at 2 in flight and 100 ms is 3 s of its own.
    # The other 3 hosts' 24 URLs must not wait behind it: the other worker takes them.
    hot, *cold = server.base_urls[4:8]
    urls = [f"{hot}/page/{token}/{i}?latency=0.1" for i in range(60)]
    urls += [f"{b}/page/{token}/{i}?latency=0.1" for i in range(8) for b in cold]
    results = fetch(client, urls, shard_size=6, jobs=8, per_host=2)
    assert all(r.ok for r in results)
    log = server.records(contains=token)
    start = min(r.arrived for r in log)
    hot_end = span(log, {key(hot)}) - start
    cold_end = span(log, {key(b) for b in cold}) - start
    assert hot_end >= 3.0
    assert cold_end < 0.5 * hot_end


def test_a_worker_killed_mid_run_costs_only_its_requests_in_flight(
    client: Client, server: LoopbackProcess, token: str
) -> None:
    # Two shards of 40 URLs, each over 2 hosts at 2 in flight and 200 ms: 2 s each. After
    # the first 8 records, one worker dies with its shard: what it had sent back stays
    # recorded, its unstarted URLs go to the other worker, and only what it had not sent is
    # fetched again: its requests in flight (4) and Results it had held for at most 0.1 s
    # (one per slot at most, as requests take 200 ms). A rerun of the whole shard would fetch
    # 30 or more again. The lost requests must have ended before their hosts get new ones
    # (the server never sees 3 at once to one host).
    hosts = server.base_urls[:4]
    urls = [f"{b}/page/{token}/{i}?latency=0.2" for i in range(20) for b in hosts]
    config = make_config(keep_content=False, jobs=8, per_host=2)
    pids = client.run(os.getpid)
    results: list[Result] = []
    killed_at = 0
    for result in fetch_distributed(urls, config, client=client, shard_size=40):
        results.append(result)
        if len(results) == 8:
            killed_at = len(results)
            os.kill(pids[busy_worker(client)], signal.SIGKILL)
    client.wait_for_workers(2, timeout=60)  # the nanny starts a new one
    assert killed_at and sorted(r.index for r in results) == list(range(len(urls)))
    assert all(r.ok for r in results)
    log = server.records(contains=token)
    again = sum(n - 1 for n in Counter((r.host, r.path) for r in log).values())
    assert 0 < again <= 8
    assert max(load.max_in_flight for load in host_loads(log).values()) <= 2


def test_stop_lets_requests_in_flight_finish_and_starts_nothing_new(
    client: Client, server: LoopbackProcess, token: str
) -> None:
    hosts, per_host = server.base_urls[:4], 2
    urls = [f"{b}/page/{token}/{i}?latency=0.5" for i in range(20) for b in hosts]
    run = ClusterRun(make_config(keep_content=False, jobs=8, per_host=per_host), client=client)
    results: list[Result] = []
    told = 0.0
    for result in run.results(urls):
        results.append(result)
        if len(results) == 8:
            told = time.monotonic()  # the server stamps with the same clock
            run.stop()
    log = server.records(contains=token)
    # Everything the server answered was recorded, once; nothing was left half-done.
    assert sorted((r.host, r.path) for r in log) == sorted(
        (urlsplit(r.url).netloc, f"{urlsplit(r.url).path}?{urlsplit(r.url).query}") for r in results
    )
    # The stop reaches the workers through the scheduler, later on a busy machine: meanwhile
    # a host slot that came free may begin one more request, but not a second, as each takes
    # 0.5 s. A host's group runs in one shard at a time, so no host has more than per_host
    # requests begun after the stop was asked; a run that went on would have 8 more each.
    after = Counter(r.host for r in log if r.arrived > told)
    assert max(after.values(), default=0) <= per_host, after
    assert len(results) < len(urls) // 2 and run.phases[0].tally.urls == len(results)


def busy_worker(client: Client) -> str:
    processing = client.processing()
    return next((worker for worker, keys in processing.items() if keys), next(iter(processing)))


def test_the_library_takes_a_client_and_keeps_input_order_and_meta(
    client: Client, server: LoopbackProcess, token: str
) -> None:
    urls = [(f"{b}/page/{token}/{i}", i) for i in range(5) for b in server.base_urls[:3]]
    results = urlfleet.fetch_all(urls, dask=client, shard_size=4, jobs=4, per_host=2)
    assert [r.meta for r in results] == [meta for _, meta in urls]
    assert all(r.ok and r.content for r in results)  # the library keeps bodies by default
    with pytest.raises(ValueError, match="session_factory"):
        urlfleet.fetch(urls, dask=client, session_factory=requests.Session)


def test_a_cookie_jar_is_kept_on_the_client_and_cookies_cross_shards(
    client: Client, server: LoopbackProcess, tmp_path: Path, token: str
) -> None:
    # One host in shards of 2 on two workers: the jar's cookie goes with every request, the
    # one the host sets with every later one, and the jar file gets both.
    base = server.base_urls[0]
    jar = tmp_path / "cookies.txt"
    jar.write_text("# Netscape HTTP Cookie File\n"
                   f"127.0.0.1\tFALSE\t/\tFALSE\t0\told\t{token}\n")  # fmt: skip
    pages = [f"{base}/page/{token}/{i}" for i in range(5)]
    urls = [f"{base}/set-cookie/sid/{token}?path=/", *pages]
    results = urlfleet.fetch_all(urls, dask=client, shard_size=2, jobs=2, per_host=1,
                                 cookie_jar=jar)  # fmt: skip
    assert all(r.ok for r in results) and len(results) == len(urls)
    sent = [r.headers.get("cookie", "") for r in server.records(contains=f"/page/{token}/")]
    assert len(sent) == 5
    assert all(sorted(s.split("; ")) == [f"old={token}", f"sid={token}"] for s in sent)
    written = jar.read_text()
    assert f"\told\t{token}" in written and f"\tsid\t{token}" in written


def test_cli_fetches_on_a_local_cluster_and_resumes(
    server: LoopbackProcess, tmp_path: Path
) -> None:
    token = uuid.uuid4().hex[:8]
    good = [f"{b}/page/{token}/{i}" for b in server.base_urls for i in range(6)]
    listed = tmp_path / "urls.txt"
    listed.write_text("\n".join(good) + f"\nnot-a-url\n{good[0]}\n", encoding="utf-8")
    out, report = tmp_path / "out.jsonl", tmp_path / "report.json"
    args = ["fetch", str(listed), "-o", str(out), "--dask", "local:2", "--shard-size", "7"]
    done = run_cli(*args, "--report", str(report), "-j", "8", "--per-host", "2")
    assert done.returncode == 0, done.stderr
    assert f"{listed}:49: no scheme" in done.stderr and "Traceback" not in done.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["url"] for r in records) == sorted(good) and all(r["ok"] for r in records)
    data = json.loads(report.read_text(encoding="utf-8"))
    assert (data["urls"], data["ok"], data["duplicates"], data["malformed"]) == (48, 48, 1, 1)
    # Keep the first half of the records, as if the run had been stopped; resume fetches the
    # rest and nothing else.
    kept = out.read_text(encoding="utf-8").splitlines()[:24]
    out.write_text("\n".join(kept) + "\n", encoding="utf-8")
    before = len(server.records(contains=token))
    again = run_cli(*args, "--resume", "--no-progress")
    assert again.returncode == 0, again.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["url"] for r in records) == sorted(good)
    assert len(server.records(contains=token)) - before == 24


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dask", "local:2", "--compare-serial", "5"], "cannot be used with --dask"),
        (["--dask", "127.0.0.1:8786"], "expected tcp://HOST:PORT or local:N"),
        (["--dask", "local:0"], "local:N needs a number of workers >= 1"),
        (["--dask", "local:2", "--shard-size", "0"], "--shard-size must be >= 1"),
        (["--dask", "tcp://127.0.0.1:9"], "no dask scheduler at tcp://127.0.0.1:9"),
    ],
)
def test_cli_cluster_mistakes_are_exit_2_in_one_line(args: list[str], message: str) -> None:
    done = run_cli("fetch", "-", *args, stdin="http://127.0.0.1:9/\n")
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    # Connecting to a scheduler that is not there gives up after 2 s instead of 30.
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
    return subprocess.run(
        [sys.executable, "-m", "urlfleet", *args],
        input=stdin, capture_output=True, text=True, timeout=180, check=False, env=env,
    )  # fmt: skip


def test_a_worker_without_the_callers_code_is_one_clear_error(
    client: Client, server: LoopbackProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A module only this process can import: the workers cannot unpickle what refers to it,
    # as when urlfleet or the caller's code is missing on a worker.
    (tmp_path / "only_here.py").write_text("def never(result):\n    return False\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from only_here import never  # type: ignore[import-not-found]

    urls = [f"{server.base_urls[0]}/page/{uuid.uuid4().hex}"]
    with pytest.raises(ClusterError, match="a shard failed on the cluster: ModuleNotFound"):
        fetch(client, urls, shard_size=1, retry_if=never)


def test_a_worker_that_cannot_import_urlfleet_is_found_before_any_shard(
    client: Client, server: LoopbackProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "not_on_workers.py").write_text("def version():\n    return '0'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from not_on_workers import version  # type: ignore[import-not-found]

    monkeypatch.setattr(urlfleet.distributed.client, "_urlfleet_version", version)
    urls = [f"{server.base_urls[0]}/page/{uuid.uuid4().hex}"]
    with pytest.raises(ClusterError, match="cannot run urlfleet .*ModuleNotFoundError"):
        fetch(client, urls, shard_size=1)
    monkeypatch.setattr(urlfleet.distributed.client, "_urlfleet_version", lambda: "0.0.1")
    with pytest.raises(ClusterError, match="has urlfleet 0.0.1, this machine"):
        fetch(client, urls, shard_size=1)
    assert server.records(contains=urls[0].rsplit("/", 1)[1]) == []


# -- every path, cluster-wide ---------------------------------------------------------------


def port(base: str) -> int:
    found = urlsplit(base).port
    assert found is not None
    return found


def test_a_shared_redirect_target_sees_one_shard_at_a_time(
    client: Client, many: LoopbackProcess, token: str
) -> None:
    # 20 hosts, each URL a redirect to one target: two shards of 10 at once, each following
    # its hops itself, would send the target up to 4 requests at once. Handed back, the hops
    # go out in the target's group's shards only, one at a time.
    *origins, target = many.base_urls
    urls = [f"{b}/to/{port(target)}/page/{token}/{i}?latency=0.1" for i, b in enumerate(origins)]
    results = fetch(client, urls, shard_size=10, jobs=8, per_host=2)
    assert sorted(r.index for r in results) == list(range(20))
    for result in results:
        assert (result.ok, result.status, result.redirects, result.attempts) == (True, 200, 1, 1)
        assert result.url == urls[result.index] and result.requests == 2
        assert result.final_url == f"{target}/page/{token}/{result.index}?latency=0.1"
        assert result.elapsed_s >= 0.2  # both requests count, on two workers
    loads = host_loads(many.records(contains=token))
    assert loads[key(target)].requests == 20 and loads[key(target)].max_in_flight <= 2
    assert {loads[key(b)].requests for b in origins} == {1}


@pytest.mark.parametrize(
    "credentials",
    [{"auth": ("user", "secret")}, {"headers": {"Authorization": "Bearer secret"}}],
    ids=["auth", "header"],
)
def test_authorization_does_not_follow_a_handed_back_hop_to_another_host(
    client: Client, server: LoopbackProcess, token: str, credentials: dict[str, Any]
) -> None:
    # requests drops Authorization when a redirect leaves the host, and keeps it on the same
    # host; a hop that goes back to the client and out in another shard must do the same.
    origin = server.base_urls[0]
    other = next(b for b in server.base_urls[1:] if host_group(b) != host_group(origin))
    urls = [f"{origin}/to/{port(b)}/auth/{token}/{n}" for n, b in enumerate((other, origin))]
    config = make_config(backoff=0.01, **credentials)
    results = sorted(fetch_distributed(urls, config, client=client, shard_size=1), key=by_index)
    assert [(r.ok, r.redirects) for r in results] == [(True, 1), (True, 1)]
    assert results[0].json() == {"authorization": None}
    assert results[1].json()["authorization"] is not None
    on_one_machine = sorted(Run(config).results(urls), key=by_index)
    assert [r.json() for r in on_one_machine] == [r.json() for r in results]
    log = server.records(contains=token)
    sent = {(r.host, r.path.split("/")[1]): r.headers for r in log if r.path.endswith("/0")}
    assert "authorization" in sent[key(origin), "to"]
    assert "authorization" not in sent[key(other), "auth"]


def by_index(result: Result) -> int:
    return result.index


def test_a_pause_asked_for_at_a_shards_end_holds_for_the_next_shard(
    client: Client, server: LoopbackProcess, token: str
) -> None:
    # One host, one request at a time, 4 URLs a shard: the 4th is answered 429 with
    # Retry-After: 2 (final: no retries). The host's next request is the next shard's.
    base = server.base_urls[2]
    urls = [f"{base}/page/{token}/{i}" for i in range(3)]
    urls += [f"{base}/retry-after/2/1/{token}"]
    urls += [f"{base}/page/{token}/{i}" for i in range(4, 8)]
    results = fetch(client, urls, shard_size=4, jobs=4, per_host=1, retries=0)
    by_url = {r.url: r for r in results}
    assert len(results) == 8 and by_url[urls[3]].status == 429
    assert all(r.ok for r in results if r.url != urls[3])
    log = sorted(server.records(contains=token), key=lambda r: r.arrived)
    assert [r.status for r in log[:4]] == [200, 200, 200, 429]
    assert log[4].arrived - log[3].arrived >= 2.0 - SERVER_SLACK


def test_a_worker_retired_gracefully_mid_run_costs_no_request_twice(
    server: LoopbackProcess, token: str
) -> None:
    # dask drops a retiring worker with its shard still running and starts the shard again
    # elsewhere at once. The copy must fetch nothing, the first must stop and report what
    # it fetched, and the rest must go to the worker that is left: each URL once.
    hosts = server.base_urls[4:8]
    urls = [f"{b}/page/{token}/{i}?latency=0.2" for i in range(16) for b in hosts]
    config = make_config(keep_content=False, jobs=8, per_host=2)
    cluster_client, close = client_for("local:2")
    try:
        results: list[Result] = []
        for result in fetch_distributed(urls, config, client=cluster_client, shard_size=12):
            results.append(result)
            if len(results) == 6:
                cluster_client.retire_workers([busy_worker(cluster_client)])
        assert len(cluster_client.scheduler_info()["workers"]) == 1
    finally:
        close()
    assert sorted(r.index for r in results) == list(range(len(urls)))
    assert all(r.ok for r in results)
    log = server.records(contains=token)
    assert Counter(Counter((r.host, r.path) for r in log).values()) == {1: len(urls)}
    assert max(load.max_in_flight for load in host_loads(log).values()) <= 2


def test_robots_txt_and_its_crawl_delay_carry_over_to_the_next_shards(
    client: Client, many: LoopbackProcess, token: str
) -> None:
    # Three shards of one host: robots.txt is asked for once, its Crawl-delay holds between
    # every two requests, and its Disallow in the later shards too.
    base = many.base_urls[0]
    urls = [f"{base}/page/{token}/{i}" for i in range(5)] + [f"{base}/private/{token}"]
    results = fetch(client, urls, shard_size=2, jobs=4, per_host=2, robots=True)
    by_url = {r.url: r for r in results}
    assert all(by_url[url].ok for url in urls[:5])
    assert by_url[urls[5]].error == "disallowed by robots.txt"
    log = [r for r in many.records() if r.host == key(base)]
    asked = [r for r in log if r.path == "/robots.txt"]
    fetched = [r for r in log if token in r.path]
    assert len(asked) == 1 and len(fetched) == 5
    assert all(r.arrived > asked[-1].arrived for r in fetched)  # none unchecked, none again
    assert host_loads(asked[-1:] + fetched)[key(base)].min_gap >= 0.3 - SERVER_SLACK


def test_a_none_among_the_urls_is_an_invalid_url_not_the_end_of_the_list(
    client: Client, server: LoopbackProcess, token: str
) -> None:
    good = [f"{base}/page/{token}/{i}" for base in server.base_urls for i in range(3)]
    urls: list[Any] = [good[0], None, 42, *good[1:]]
    results = fetch(client, urls, shard_size=4)
    assert len(results) == len(urls)
    assert sorted(r.url for r in results if r.ok) == sorted(good)
    bad = sorted((r for r in results if not r.ok), key=lambda r: r.index)
    assert [(r.index, r.error) for r in bad] == [
        (1, "invalid URL: not a URL string: None"),
        (2, "invalid URL: not a URL string: 42"),
    ]
    one_machine = {r.index: r.error for r in urlfleet.fetch_all(urls) if not r.ok}
    assert one_machine == {r.index: r.error for r in bad}


def test_a_slow_consumer_holds_back_the_cluster_not_fills_memory(
    client: Client, server: LoopbackProcess, token: str
) -> None:
    read = [0]

    def listing() -> Iterator[str]:
        for i in range(400):
            read[0] += 1
            yield f"{server.base_urls[i % 4]}/page/{token}/{i}?latency=0"

    config = make_config(keep_content=False, window=20)
    results = fetch_distributed(listing(), config, client=client, shard_size=10)
    first = next(results)
    time.sleep(2.0)  # long enough to fetch all 400 on loopback, were nothing holding it back
    # The window is 40 (2 shards of 10 for each of 2 workers). At most: a window held for the
    # caller, and the shards started just before it filled; those running; a window ahead.
    assert read[0] <= 40 + 2 * 10 + 2 * 10 + 40, read[0]
    rest = list(results)
    assert len(rest) + 1 == 400 and first.ok and all(r.ok for r in rest)


def _profiles(dask_worker: Any) -> bool:
    return "profile" in dask_worker.periodic_callbacks


def test_a_restarted_worker_runs_without_the_profiler_too(client: Client) -> None:
    # The profiler's sys._current_frames() can freeze a Python 3.11 worker starting threads
    # (CPython gh-106883): seen as a shard stuck in Thread.start after its worker was killed
    # and restarted by its nanny, which had not been told to leave the profiler off.
    pids = client.run(os.getpid)
    victim = next(iter(pids.values()))
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            now = client.run(os.getpid)
        except Exception:  # the dead worker is still listed for a moment
            continue
        if len(now) == len(pids) and victim not in now.values():
            break
    assert victim not in client.run(os.getpid).values()
    assert not any(client.run(_profiles).values())
