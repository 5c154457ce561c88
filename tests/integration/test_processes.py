"""Fetching in worker processes on this machine (``--processes``), against the loopback server.

Politeness is checked from the server's side, as for dask: whichever process sent them, a
host never sees more than per_host requests at once, nor two starts closer than delay, and
a pause it asked for holds for the host's next shard in whichever process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import urlfleet
from tests.conftest import SERVER_SLACK
from tests.integration.test_interrupts_resume import (
    interrupt_twice,
    stopped_at_once,
)
from tests.verdicts import is_a_verdict
from urlfleet.api import make_config
from urlfleet.cli import main
from urlfleet.distributed import host_group
from urlfleet.distributed.local import fetch_in_processes, processes_run
from urlfleet.loopback import LoopbackProcess, ServerSpec, host_loads
from urlfleet.record.records import Result
from urlfleet.run.cores import AUTO_MIN_URLS, choose_processes, usable_cores

pytestmark = pytest.mark.integration


@pytest.fixture
def token() -> str:
    return uuid.uuid4().hex[:12]


def key(base: str) -> str:
    return base.removeprefix("http://")


def fetch(urls: list[Any], *, shard_size: int, **options: Any) -> list[Result]:
    config = make_config(keep_content=False, backoff=0.01, **options)
    return list(fetch_in_processes(urls, config, processes=2, shard_size=shard_size))


def test_a_host_is_in_one_process_at_a_time_with_its_limits(
    server: LoopbackProcess, token: str
) -> None:
    # 12 URLs per host, 4 per shard: each host runs in 3+ shards, taken by either process as
    # it comes free. Two shards of one host at once would show up to 4 requests in flight
    # and starts closer than the delay.
    hosts = server.base_urls[:6]
    urls = [f"{b}/page/{token}/{i}?latency=0.02" for i in range(12) for b in hosts]
    results = fetch(urls, shard_size=4, jobs=16, per_host=2, delay=0.1)
    assert sorted(r.index for r in results) == list(range(len(urls)))
    assert all(r.ok for r in results)
    loads = host_loads(server.records(contains=token))
    assert {load.requests for load in loads.values()} == {12}
    assert max(load.max_in_flight for load in loads.values()) <= 2
    assert min(load.min_gap for load in loads.values()) >= 0.1 - SERVER_SLACK


def test_a_redirect_to_a_host_of_another_shard_is_handed_over(
    server: LoopbackProcess, token: str
) -> None:
    # Every origin redirects to one target: shards of the origins' groups run in both
    # processes at once, and would send the target up to 4 at once if each followed its
    # hops itself. Handed back, the hops go out in the target's group's shards only.
    target = server.base_urls[7]
    origins = [b for b in server.base_urls[:7] if host_group(b) != host_group(target)]
    port = urlsplit(target).port
    urls = [f"{b}/to/{port}/page/{token}/{i}?latency=0.1" for i in range(3) for b in origins]
    results = fetch(urls, shard_size=3, jobs=8, per_host=2)
    assert sorted(r.index for r in results) == list(range(len(urls)))
    for result in results:
        assert (result.ok, result.status, result.redirects) == (True, 200, 1)
        assert result.url == urls[result.index]
        assert result.final_url == f"{target}/page/{token}/{urls[result.index].split('/')[-1]}"
    loads = host_loads(server.records(contains=token))
    assert loads[key(target)].requests == len(urls)
    assert loads[key(target)].max_in_flight <= 2


def test_a_429_pause_holds_across_shards_and_processes(server: LoopbackProcess, token: str) -> None:
    # One host, one request at a time, 4 URLs a shard: the 4th is answered 429 with
    # Retry-After: 1 (final: no retries). The host's next request is in another shard,
    # which may run in the other process: it must still wait out the pause.
    base = server.base_urls[3]
    urls = [f"{base}/page/{token}/{i}" for i in range(3)]
    urls += [f"{base}/retry-after/1/1/{token}"]
    urls += [f"{base}/page/{token}/{i}" for i in range(4, 8)]
    urls += [f"{b}/page/{token}/other" for b in server.base_urls[4:6]]  # the other process's
    results = fetch(urls, shard_size=4, jobs=4, per_host=1, retries=0)
    by_url = {r.url: r for r in results}
    assert len(results) == len(urls) and by_url[urls[3]].status == 429
    assert all(r.ok for r in results if r.url != urls[3])
    log = sorted((r for r in server.records(contains=token) if r.host == key(base)),
                 key=lambda r: r.arrived)  # fmt: skip
    assert [r.status for r in log[:4]] == [200, 200, 200, 429]
    assert log[4].arrived - log[3].arrived >= 1.0 - SERVER_SLACK


def test_processes_2_returns_what_1_process_returns(server: LoopbackProcess, token: str) -> None:
    base = server.base_urls[0]
    urls: list[Any] = [(f"{b}/page/{token}/{i}", i) for i in range(6) for b in server.base_urls]
    urls += [f"{base}/status/404/{token}", f"{base}/flaky/1/{token}", "not a url"]
    options: dict[str, Any] = {"jobs": 8, "per_host": 2, "backoff": 0.01}
    two = urlfleet.fetch_all(urls, processes=2, shard_size=10, **options)
    one = urlfleet.fetch_all(urls, processes=1, **options)

    def seen(results: list[Result]) -> list[tuple[Any, ...]]:
        return [(r.index, r.url, r.status, r.ok, r.meta, r.content) for r in results]

    assert seen(two) == seen(one) and len(two) == len(urls)


@pytest.fixture(scope="module")
def named() -> Iterator[LoopbackProcess]:
    """Two hosts on two addresses: a cookie keeps to a host name, not a port."""
    with LoopbackProcess(ServerSpec(addresses=("127.0.0.1", "127.0.0.2"), latency=0.01)) as p:
        yield p


def test_a_hosts_cookies_go_on_to_its_next_shards(named: LoopbackProcess, token: str) -> None:
    # One host cut into shards of 2, one after another: a cookie its first shard was given
    # goes with every later request, until a later shard's answer deletes it.
    first, other = named.base_urls
    pages = [f"{first}/page/{token}/{i}" for i in range(7)]
    urls = [f"{first}/set-cookie/sid/{token}?path=/", *pages[:3],
            f"{first}/set-cookie/sid/gone?path=/&max_age=0", *pages[3:],
            *(f"{other}/page/{token}/{i}" for i in range(4))]  # fmt: skip
    results = fetch(urls, shard_size=2, jobs=4, per_host=1)
    assert len(results) == len(urls) and all(r.ok for r in results)
    sent = {r.path: r.headers.get("cookie") for r in named.records(contains=token)
            if r.host == key(first)}  # fmt: skip
    assert [sent[urlsplit(u).path] for u in pages] == [f"sid={token}"] * 3 + [None] * 4
    assert not any("cookie" in r.headers for r in named.records(contains=token)
                   if r.host == key(other))  # fmt: skip


def test_a_cookie_jar_is_read_and_written_by_the_parent(
    named: LoopbackProcess, tmp_path: Path, token: str
) -> None:
    # The jar holds a cookie of the first host; a run in two processes sends it there only,
    # adds the one the host sets, and writes both back.
    first, other = named.base_urls
    jar = tmp_path / "cookies.txt"
    jar.write_text("# Netscape HTTP Cookie File\n"
                   f"127.0.0.1\tFALSE\t/\tFALSE\t0\told\t{token}\n")  # fmt: skip
    urls = [f"{first}/set-cookie/sid/{token}?path=/",
            *(f"{first}/page/{token}/{i}" for i in range(5)),
            *(f"{other}/page/{token}/{i}" for i in range(4))]  # fmt: skip
    listed, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
    listed.write_text("\n".join(urls) + "\n", encoding="utf-8")
    done = start_fetch(listed, out, "--shard-size", "2", "--per-host", "1",
                       "--cookie-jar", str(jar))  # fmt: skip
    _, stderr = done.communicate(timeout=120)
    assert done.returncode == 0, stderr
    assert lines_in(out) == len(urls)
    seen = named.records(contains=token)
    to_first = {r.path: r.headers.get("cookie") for r in seen if r.host == key(first)}
    assert to_first.pop(f"/set-cookie/sid/{token}?path=/") == f"old={token}"
    assert len(to_first) == 5
    assert all(sorted(sent.split("; ")) == [f"old={token}", f"sid={token}"]
               for sent in to_first.values())  # fmt: skip
    assert not any("cookie" in r.headers for r in seen if r.host == key(other))
    written = jar.read_text()
    assert f"\told\t{token}" in written and f"\tsid\t{token}" in written


def test_a_killed_worker_costs_only_what_it_had_not_sent(
    server: LoopbackProcess, token: str
) -> None:
    # Two shards of 40 URLs, each over 2 hosts at 2 in flight and 200 ms. After 8 records a
    # worker is killed: its pool breaks, its shard ends, and only what it had not sent back
    # is fetched again, in a new pool; every URL has exactly one Result.
    hosts = server.base_urls[:4]
    urls = [f"{b}/page/{token}/{i}?latency=0.2" for i in range(20) for b in hosts]
    config = make_config(keep_content=False, jobs=8, per_host=2)
    results: list[Result] = []
    for result in fetch_in_processes(urls, config, processes=2, shard_size=40):
        results.append(result)
        if len(results) == 8:
            os.kill(loky_workers()[0], signal.SIGKILL)
    assert sorted(r.index for r in results) == list(range(len(urls)))
    assert all(r.ok for r in results)
    log = server.records(contains=token)
    again = sum(n - 1 for n in Counter((r.host, r.path) for r in log).values())
    assert 0 < again <= 8  # at most its 4 in flight and what it held to send (0.1 s of it)
    assert max(load.max_in_flight for load in host_loads(log).values()) <= 2


def test_a_killed_worker_leaves_the_other_processes_shard_alone(
    server: LoopbackProcess, token: str
) -> None:
    # Two hosts of two groups, a shard each, one per process. Killing one worker refetches
    # some of its host's URLs; the other host, in the other process, sees each URL once.
    first = server.base_urls[0]
    second = next(b for b in server.base_urls if host_group(b) != host_group(first))
    urls = [f"{b}/page/{token}/{i}?latency=0.2" for i in range(20) for b in (first, second)]
    config = make_config(keep_content=False, jobs=8, per_host=2)
    results: list[Result] = []
    for result in fetch_in_processes(urls, config, processes=2, shard_size=20):
        results.append(result)
        if len(results) == 8:  # both hosts under way: 4 requests a second each
            os.kill(loky_workers()[0], signal.SIGKILL)
    assert sorted(r.index for r in results) == list(range(len(urls)))
    assert all(r.ok for r in results)
    hits = {b: Counter(r.path for r in server.records(contains=token) if r.host == key(b))
            for b in (first, second)}  # fmt: skip
    twice = {b for b, paths in hits.items() if max(paths.values()) > 1}
    assert len(twice) == 1, hits  # the killed worker's host, and only it
    (spared,) = {first, second} - twice
    assert sorted(hits[spared].values()) == [1] * 20


def loky_workers() -> list[int]:
    """This process's loky worker processes, by their command lines."""
    children = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        children += (task / "children").read_text().split()
    workers = []
    for pid in children:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"LokyProcess" in command:  # not loky's resource tracker
            workers.append(int(pid))
    assert workers, "no loky worker found"
    return workers


# -- the command line ------------------------------------------------------------------------


def start_fetch(listed: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "urlfleet", "fetch", str(listed), "-o", str(out),
               "--processes", "2", "-j", "8", "--no-progress", *extra]  # fmt: skip
    # A session of its own: Ctrl-C goes to the whole group, workers included, as at a terminal.
    return subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)


def lines_in(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


def test_ctrl_c_then_resume_loses_nothing_and_fetches_nothing_twice(
    server: LoopbackProcess, tmp_path: Path, token: str
) -> None:
    urls = [f"{b}/page/{token}/{i}?latency=0.2" for i in range(25) for b in server.base_urls]
    listed, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
    listed.write_text("\n".join(urls) + "\n", encoding="utf-8")
    process = start_fetch(listed, out)
    deadline = time.monotonic() + 60
    while lines_in(out) < 20:  # records are coming from both processes
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    interrupted = lines_in(out)
    assert interrupted < len(urls)
    again = start_fetch(listed, out, "--resume")
    _, stderr = again.communicate(timeout=120)
    assert again.returncode == 0, stderr
    assert f"resuming: {interrupted} URLs" in stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert Counter(r["url"] for r in records) == Counter(urls)  # each once, none missing
    assert all(r["ok"] for r in records)
    hits = Counter((r.host, r.path) for r in server.records(contains=token))
    assert set(hits.values()) == {1}  # the requests in flight at Ctrl-C were recorded


def test_processes_need_no_dask(server: LoopbackProcess, tmp_path: Path, token: str) -> None:
    urls = [f"{b}/page/{token}/{i}" for i in range(3) for b in server.base_urls]
    listed, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
    listed.write_text("\n".join(urls) + "\n", encoding="utf-8")
    script = ("import sys; sys.modules['dask'] = sys.modules['distributed'] = None; "
              "from urlfleet.cli import main; raise SystemExit(main(sys.argv[1:]))")  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", script, "fetch", str(listed), "-o", str(out), "--processes", "2"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(json.loads(line)["url"] for line in out.read_text().splitlines()) == sorted(urls)


def test_the_workers_cpu_is_counted_in_the_verdict(
    server: LoopbackProcess, tmp_path: Path, token: str
) -> None:
    urls = [f"{b}/page/{token}/{i}" for i in range(5) for b in server.base_urls]
    with processes_run(make_config(keep_content=False, jobs=8), 2, size=len(urls)) as run:
        assert len(list(run.results(urls))) == len(urls)
    phase = run.phases[-1]
    assert phase.cpu_s is not None and phase.worker_cpu_s > 0  # each shard's end says its CPU
    listed = tmp_path / "urls.txt"
    listed.write_text("\n".join(f"{url}/cli" for url in urls) + "\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "urlfleet", "fetch", str(listed), "-o", str(tmp_path / "out"),
         "--processes", "2"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("cpu:      ")]
    assert len(lines) == 1, done.stderr
    verdict = lines[0].removeprefix("cpu:      ")
    assert is_a_verdict(verdict) and "of one core in 2 processes" in verdict, verdict


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["0"], "--processes must be from 1 to"),
        (["-1"], "--processes must be from 1 to"),
        ([str(usable_cores() + 1)], "(the cores this process may use)"),
        (["1.5"], "--processes must be a whole number or 'auto'"),
        (["two"], "--processes must be a whole number or 'auto'"),
        (["2", "--dask", "local:2"], "--processes cannot be used with --dask"),
        (["2", "--compare-serial", "3"], "--processes 2: --compare-serial times one process"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(
    value: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fetch", "-", "--processes", *value]) == 2
    stderr = capsys.readouterr().err
    assert message in stderr and stderr.count("\n") == 1, stderr


def test_the_library_refuses_bad_values_with_value_error() -> None:
    for bad in (0, -1, usable_cores() + 1, "1.5", 2.0):
        with pytest.raises(ValueError, match="processes must be"):
            urlfleet.fetch(["http://127.0.0.1:9/"], processes=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot be used with dask="):
        urlfleet.fetch(["http://127.0.0.1:9/"], processes=2, dask="local:2")


def test_auto_says_why_it_takes_one_process_for_a_short_list(
    server: LoopbackProcess, tmp_path: Path, token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    listed = tmp_path / "urls.txt"
    listed.write_text(f"{server.base_urls[0]}/page/{token}\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["fetch", str(listed), "-o", str(out), "--processes", "auto"]) == 0
    reason = [line for line in capsys.readouterr().err.splitlines() if "auto" in line]
    expected = f"1 process (1 URLs at most; starting more pays from {AUTO_MIN_URLS})"
    assert reason == [f"--processes auto: {expected}"]
    many = choose_processes("auto", size=10**6)
    assert many.count == usable_cores()
    assert choose_processes("auto", size=None).count == 1


def test_a_second_ctrl_c_stops_every_process_at_once(tmp_path: Path, token: str) -> None:
    # Ctrl-C to the whole session: the workers hear it too. The slow host's requests are open
    # in one worker while the other's records of the fast host come in.
    run = interrupt_twice(start_fetch, tmp_path, token)
    stopped_at_once(run)
    assert run.gone, "a worker process outlived the run"
    assert Counter(r["url"] for r in run.recorded).most_common(1)[0][1] == 1


def test_runs_in_processes_leave_no_accepting_thread_behind(
    server: LoopbackProcess, token: str
) -> None:
    # Each run's queue server accepts on a thread of this process; one left behind after its
    # listener closed used to spin on a core for as long as the process lived, one per run.
    for run in range(3):
        urls = [f"{b}/page/{token}/{run}/{i}" for i in range(4) for b in server.base_urls]
        assert all(r.ok for r in fetch(urls, shard_size=8, jobs=4))

    def accepting() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.endswith("(accepter)")]

    deadline = time.monotonic() + 10
    while accepting() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not accepting()
