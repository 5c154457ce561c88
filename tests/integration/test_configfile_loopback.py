"""urlfleet.toml end to end: the real command line in a working directory holding the file,
against loopback hosts whose records show what the file asked for."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SERVER_SLACK
from urlfleet.loopback import LoopbackProcess, ServerSpec, host_loads

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_addresses() -> Iterator[LoopbackProcess]:
    """Two hosts, on 127.0.0.1 and 127.0.0.2."""
    with LoopbackProcess(ServerSpec(addresses=("127.0.0.1", "127.0.0.2"), latency=0.05)) as srv:
        yield srv


@pytest.fixture
def token() -> str:
    return uuid.uuid4().hex[:10]


def urlfleet_in(workdir: Path, *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    """``urlfleet ARGS`` run as a user runs it, in ``workdir`` (where urlfleet.toml is)."""
    return subprocess.run(
        [sys.executable, "-m", "urlfleet", *args],
        input=stdin, capture_output=True, text=True, timeout=120, check=False, cwd=workdir,
    )  # fmt: skip


def authority(base_url: str) -> str:
    return base_url.split("://", 1)[1]


def test_a_host_table_limits_and_keys_that_host_only(
    two_addresses: LoopbackProcess, tmp_path: Path, token: str
) -> None:
    first, second = two_addresses.base_urls
    (tmp_path / "urlfleet.toml").write_text(
        f'per_host = 4\njobs = 8\n\n[hosts."{authority(second)}"]\nper_host = 1\ndelay = 0.3\n'
        'headers = {X-Api-Key = "k"}\n',
        encoding="utf-8",
    )
    urls = [f"{base}/page/{token}/{i}" for base in (first, second) for i in range(5)]
    done = urlfleet_in(tmp_path, "fetch", "-", "-o", "out.jsonl", stdin="\n".join(urls))
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(records) == 10 and all(r["ok"] for r in records)
    seen = two_addresses.records(contains=token)
    loads = host_loads(seen)
    slow = loads[authority(second)]
    assert slow.requests == 5 and slow.max_in_flight == 1
    assert slow.min_gap >= 0.3 - SERVER_SLACK
    assert loads[authority(first)].requests == 5
    for record in seen:
        if record.host == authority(second):
            assert record.headers.get("x-api-key") == "k"
        else:
            assert "x-api-key" not in record.headers


def test_the_command_line_overrides_the_file_and_the_files_headers_are_sent(
    server: LoopbackProcess, tmp_path: Path, token: str
) -> None:
    (tmp_path / "urlfleet.toml").write_text(
        'delay = 0.5\nper_host = 1\nheader = ["X-From-File: yes"]\n', encoding="utf-8"
    )
    urls = [f"{server.base_urls[3]}/page/{token}/{i}" for i in range(4)]
    done = urlfleet_in(tmp_path, "fetch", "-", "-o", "out.jsonl", "--report", "report.json",
                       "--delay", "0.2", stdin="\n".join(urls))  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["delay"] == 0.2 and report["per_host"] == 1
    seen = server.records(contains=token)
    (load,) = host_loads(seen).values()
    assert load.requests == 4 and load.max_in_flight == 1
    assert load.min_gap >= 0.2 - SERVER_SLACK
    assert all(record.headers.get("x-from-file") == "yes" for record in seen)


def test_host_headers_stay_behind_when_a_redirect_leaves_the_host(
    server: LoopbackProcess, tmp_path: Path, token: str
) -> None:
    origin, other = server.base_urls[5], server.base_urls[6]
    (tmp_path / "urlfleet.toml").write_text(
        f'header = ["X-Client: every"]\n'
        f'[hosts."{authority(origin)}"]\nheaders = {{X-Api-Key = "k", X-Client = "origin"}}\n'
        f'[hosts."{authority(other)}"]\nheaders = {{X-Other = "o", User-Agent = ""}}\n',
        encoding="utf-8",
    )
    url = f"{origin}/to/{other.rsplit(':', 1)[1]}/page/{token}/moved"
    done = urlfleet_in(tmp_path, "fetch", "-", "-o", "out.jsonl", stdin=url)
    assert done.returncode == 0, done.stderr
    (record,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert record["redirects"] == 1
    by_host = {r.host: r.headers for r in server.records(contains=token)}
    first, second = by_host[authority(origin)], by_host[authority(other)]
    assert first["x-api-key"] == "k" and first["x-client"] == "origin"
    assert "x-other" not in first and first["user-agent"].startswith("urlfleet/")
    assert "x-api-key" not in second and second["x-client"] == "every"
    assert second["x-other"] == "o" and "user-agent" not in second


def test_print_config_in_a_working_directory_masks_and_fetches_nothing(
    server: LoopbackProcess, tmp_path: Path, token: str
) -> None:
    (tmp_path / "urlfleet.toml").write_text(
        f'header = ["Authorization: Bearer {token}"]\n'
        f'[hosts."{authority(server.base_urls[0])}"]\nheaders = {{X-Api-Key = "{token}"}}\n',
        encoding="utf-8",
    )
    url = f"{server.base_urls[0]}/page/{token}/never"
    done = urlfleet_in(tmp_path, "fetch", "-", "--print-config", stdin=url)
    assert done.returncode == 0, done.stderr
    assert token not in done.stdout and "Authorization: ***" in done.stdout
    assert not server.records(contains=token)
