"""The HTML report of a real run, opened in headless Chromium: drawn, and every host is there.

The run has one throttling host (429 with Retry-After once) and one slow host. Chromium is
Debian's ``chromium``; ``.ci/run`` installs it, so this test fails rather than skips without it.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from urlfleet.loopback import LoopbackProcess, ServerSpec

pytestmark = pytest.mark.integration

CHROMIUM_TIMEOUT = 90  # seconds; it takes about one, but a cold start on a busy CI box is slower
SLOW, THROTTLED = 1, 2  # host indexes


@pytest.fixture(scope="module")
def hosts() -> Iterator[LoopbackProcess]:
    spec = ServerSpec(hosts=4, latency=0.02, host_latency=(None, 0.3, None, None))
    with LoopbackProcess(spec) as process:
        yield process


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[bytes]:
    binary = shutil.which("chromium")
    assert binary, "chromium is not installed: apt-get install -y chromium (.ci/run does)"
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
         "--window-size=1400,2000", *args],
        capture_output=True, timeout=CHROMIUM_TIMEOUT, check=False,
    )  # fmt: skip


def fetch_with_html(hosts: LoopbackProcess, tmp_path: Path) -> tuple[Path, dict[str, object]]:
    token = uuid.uuid4().hex[:8]
    base = hosts.base_urls
    urls = [f"{base[THROTTLED]}/retry-after/1/1/{token}/held"]
    urls += [f"{b}/page/{token}/{i}" for i in range(12) for b in base]
    page, report = tmp_path / "run.html", tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "urlfleet", "fetch", "-", "-o", str(tmp_path / "out.jsonl"),
         "--html", str(page), "--report", str(report), "-j", "16", "--per-host", "2",
         "--compare-serial", "4", "--no-progress"],
        input="\n".join(urls), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"HTML report: {page}" in done.stderr
    return page, json.loads(report.read_text(encoding="utf-8"))


def lane(dom: str, host: str) -> str:
    match = re.search(rf'<g class="lane[^"]*" data-host="{re.escape(host)}">(.*?)</g>', dom, re.S)
    assert match, f"no lane for {host}"
    return match[1]


def test_the_report_renders_with_every_host_and_the_headline(
    hosts: LoopbackProcess, tmp_path: Path
) -> None:
    page, report = fetch_with_html(hosts, tmp_path)
    shot = tmp_path / "run.png"
    taken = chromium(f"--screenshot={shot}", page.as_uri(), profile=tmp_path / "p1")
    assert taken.returncode == 0 and shot.exists(), taken.stderr[-2000:]
    assert_not_blank(shot)
    dumped = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "p2")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout.decode("utf-8")
    names = [b.removeprefix("http://") for b in hosts.base_urls]
    for name in names:
        lane(dom, name)
    assert re.search(r'id="urls"><b>49</b>', dom) and re.search(r'id="ok"><b>49</b>', dom)
    assert f'id="speedup"><b>{report["speedup"]:.1f}×</b>' in dom
    assert f'id="wall"><b>{report["wall_s"]:.2f} s</b>' in dom
    # The slow host set the pace; the throttled one shows its wait, and its 429 in the table.
    assert report["bottleneck"] == f"politeness towards {names[SLOW]}"
    assert f'<g class="lane pace" data-host="{names[SLOW]}">' in dom
    assert 'class="pause"' in lane(dom, names[THROTTLED])
    assert re.search(r"paused: 429/503, Retry-After: 2 attempts, [\d.]+–[\d.]+ s",
                     lane(dom, names[THROTTLED]))  # fmt: skip
    assert "p50" in dom and "p99" in dom and "200: 49" in dom
    # The real records' time to first byte, as --report has it, and the threads' use.
    ttfb = report["ttfb"]
    assert isinstance(ttfb, dict) and ttfb["count"] == 49
    assert f"time to first byte: p50 {ttfb['p50_s']:.3f} s, p90 {ttfb['p90_s']:.3f} s" in dom
    assert re.search(r"Threads busy after the serial sample: at most \d+% of its 16 threads", dom)


def test_report_command_rebuilds_the_page_from_the_records(
    hosts: LoopbackProcess, tmp_path: Path
) -> None:
    page, _ = fetch_with_html(hosts, tmp_path)
    again = tmp_path / "again.html"
    done = subprocess.run(
        [sys.executable, "-m", "urlfleet", "report", str(tmp_path / "out.jsonl"), "--html",
         str(again)], capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = again.read_text(encoding="utf-8")
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert re.search(r'id="urls"><b>49</b>', text)
    assert "time to first byte: p50" in text and "not in these records" in text  # no -j given
    if all("started_s" in r for r in records):  # records that say when each URL started
        for base in hosts.base_urls:
            assert f'data-host="{base.removeprefix("http://")}"' in text
    else:
        assert 'id="no-timeline"' in text


def assert_not_blank(png: Path) -> None:
    """More than a handful of colours, and a fair share of the page not white."""
    from matplotlib import image

    pixels = image.imread(png)[..., :3]
    colours = {tuple(p) for p in pixels[::7, ::7].reshape(-1, 3).round(2).tolist()}
    inked = (pixels.sum(axis=2) < 2.9).mean()
    assert len(colours) > 20, f"only {len(colours)} colours"
    assert inked > 0.05, f"only {inked:.1%} of the page is not white"


def test_ctrl_c_still_writes_the_page_with_what_finished(tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:8]
    with LoopbackProcess(ServerSpec(hosts=2, latency=0.02, host_latency=(5.0,))) as server:
        urls = [f"{base}/page/{token}/{i}" for i in range(40) for base in server.base_urls]
        out, page, listed = tmp_path / "out.jsonl", tmp_path / "run.html", tmp_path / "urls.txt"
        listed.write_text("\n".join(urls) + "\n", encoding="utf-8")
        process = subprocess.Popen(
            [sys.executable, "-m", "urlfleet", "fetch", str(listed), "-o", str(out), "--html",
             str(page), "--grace", "0.5", "--no-progress"],
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        fast = server.base_urls[1].removeprefix("http://")
        try:
            deadline = time.monotonic() + 60
            while recorded(out).count(f'"host": "{fast}"') < 40:  # the fast host is done
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.02)
            process.send_signal(signal.SIGINT)  # the slow host's requests would take 5 s each
            _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 130, stderr
    finished = len(out.read_text(encoding="utf-8").splitlines())
    text = page.read_text(encoding="utf-8")
    assert finished >= 40 and f'id="urls"><b>{finished}</b>' in text
    assert f'data-host="{fast}"' in text


def recorded(out: Path) -> str:
    return out.read_text(encoding="utf-8") if out.exists() else ""
