"""``urlfleet bench`` end to end: its table, its chart, and a user's list as input.

These check what the command says, not how fast the machine is: rows, the jobs=1 baseline,
efficiency in a sane range, a real PNG, and the text chart when matplotlib is missing.
"""

from __future__ import annotations

import argparse
import re
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.verdicts import is_a_verdict
from urlfleet.cli.bench import add_bench_command
from urlfleet.loopback import LoopbackProcess

pytestmark = pytest.mark.integration

# Small and quick: 4 hosts, 20 ms, a handful of URLs per point.
TINY = ["--urls", "24", "--hosts", "4", "--latency", "0.02", "--sample", "6"]
ROW = re.compile(r"^\s*(\d+)(\*?)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s")


@dataclass(frozen=True)
class Row:
    jobs: int
    sampled: bool
    wall_s: float
    speedup: float
    efficiency: float


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str

    def rows(self) -> list[Row]:
        rows = []
        for line in self.out.splitlines():
            match = ROW.match(line)
            if match:
                jobs, star, wall, _rate, speedup, _ideal, efficiency = match.groups()
                rows.append(Row(int(jobs), star == "*", float(wall), float(speedup),
                                float(efficiency)))  # fmt: skip
        return rows


def bench(capsys: pytest.CaptureFixture[str], *argv: str) -> Outcome:
    """Run ``urlfleet bench ARGV`` in this process, as the CLI would."""
    parser = argparse.ArgumentParser(prog="urlfleet")
    add_bench_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", *argv])
    code = args.handler(args)
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err)


def test_one_row_per_jobs_value_with_jobs_1_as_baseline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    done = bench(capsys, *TINY, "--jobs-list", "8,2")  # 1 is added, order does not matter
    assert done.code == 0, done.err
    rows = done.rows()
    assert [row.jobs for row in rows] == [1, 2, 8]
    assert rows[0].speedup == 1.0 and rows[0].sampled  # 6 of 24 URLs, extrapolated
    assert "jobs=1 fetched 6 of the 24 URLs" in done.out
    assert not any(row.sampled for row in rows[1:])
    assert all(0 < row.efficiency <= 1.2 for row in rows), done.out
    assert rows[-1].speedup > 1.0
    server = re.search(r"server: (\d+) requests, at most (\d+) in flight", done.out)
    assert server is not None, done.out
    assert int(server[1]) == 6 + 24 + 24 and int(server[2]) <= 4  # --per-host 4 by default
    # Whether a point was CPU-bound depends on the machine's load: the line is there, in form.
    cpu = re.search(r"^cpu: (CPU-bound from --jobs (\d+); )?at --jobs (\d+), the fastest: (.+)$",
                    done.out, re.MULTILINE)  # fmt: skip
    assert cpu is not None, done.out
    assert is_a_verdict(cpu[4]), cpu[4]
    assert {int(cpu[3]), int(cpu[2] or 1)} <= {1, 2, 8}


def test_plot_writes_a_png(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import matplotlib  # noqa: F401 - in the test extra: the plot is tested, never skipped

    png = tmp_path / "speedup.png"
    done = bench(capsys, *TINY, "--jobs-list", "1,4", "--plot", str(png))
    assert done.code == 0, done.err
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 600 and height >= 400
    assert f"plot: {png}" in done.out


def test_without_matplotlib_a_hint_and_a_text_chart(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes `import` raise ImportError, installed or not.
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.ticker"):
        monkeypatch.setitem(sys.modules, name, None)
    png = tmp_path / "speedup.png"
    done = bench(capsys, *TINY, "--jobs-list", "1,4", "--plot", str(png))
    assert done.code == 0, done.err
    assert not png.exists()
    assert "pip install 'urlfleet[plot]'" in done.err and len(done.err.splitlines()) == 1
    chart = done.out[done.out.index("speedup over jobs=1 (log scale)") :].splitlines()
    assert [line.split()[0] for line in chart[1:]] == ["1", "4"]
    assert all("|" in line and "x  (ideal" in line for line in chart[1:])


def test_a_user_list_is_limited_and_fetched_again_at_every_point(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, server: LoopbackProcess
) -> None:
    token = uuid.uuid4().hex[:12]
    urls = [f"{base}/page/{token}/{i}?latency=0.02" for i in range(3) for base in server.base_urls]
    listed = tmp_path / "urls.txt"
    listed.write_text("# my list\n" + "\n".join(urls) + "\n", encoding="utf-8")
    done = bench(capsys, str(listed), "--limit", "12", "--jobs-list", "1,4", "--sample", "4")
    assert done.code == 0, done.err
    assert "12 URLs from urls.txt; --per-host 2" in done.out
    assert [row.jobs for row in done.rows()] == [1, 4]
    seen = server.records(contains=token)
    assert len(seen) == 4 + 12  # the jobs=1 sample, then the first 12 again
    assert {record.path for record in seen} == {"/" + url.split("/", 3)[3] for url in urls[:12]}


def test_failed_urls_make_exit_status_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, server: LoopbackProcess
) -> None:
    listed = tmp_path / "urls.txt"
    base = server.base_urls[0]
    listed.write_text(f"{base}/page/ok?latency=0\n{base}/status/404/x?latency=0\n", "utf-8")
    done = bench(capsys, str(listed), "--jobs-list", "2")
    assert done.code == 1
    assert "jobs=2: 1 of 2 URLs failed" in done.err
