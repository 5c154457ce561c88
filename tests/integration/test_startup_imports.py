"""What a command loads: a plain ``urlfleet fetch`` loads nothing it does not use, and
``--version``, ``--help`` and ``import urlfleet`` load none of the fetching machinery.

Asserted on the modules a real process holds at its end (a subprocess against the loopback
server), never on time: ``benchmarks/startup.py`` measures that. The static side, which of
urlfleet's own modules import what at module level, is in tests/unit/test_layering.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.import_rules import FETCHING, NOT_FOR_A_PLAIN_FETCH, within
from urlfleet.loopback import LoopbackProcess, ServerSpec

pytestmark = pytest.mark.integration

# Runs the command line in this process, then writes the names of the modules it loaded.
WRAPPER = """\
import json, sys
try:
    from urlfleet.cli import main
    code = main(sys.argv[2:])
except SystemExit as exc:  # --version and --help exit from inside argparse
    code = exc.code
with open(sys.argv[1], "w") as out:
    json.dump(sorted(sys.modules), out)
raise SystemExit(code)
"""


def loaded(args: list[str], cwd: Path) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    modules = cwd / f"modules-{uuid.uuid4().hex[:8]}.json"
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, str(modules), *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return set(json.loads(modules.read_text(encoding="utf-8"))), done


def fetch_one(server: LoopbackProcess, tmp_path: Path, *options: str) -> set[str]:
    listed, out = tmp_path / "one.txt", tmp_path / f"out-{uuid.uuid4().hex[:8]}.jsonl"
    listed.write_text(f"{server.base_urls[0]}/page/{uuid.uuid4().hex}\n", encoding="utf-8")
    modules, done = loaded(["fetch", str(listed), "-o", str(out), *options], tmp_path)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["ok"] for line in out.read_text().splitlines()] == [True]
    return modules


def test_a_plain_fetch_loads_only_what_it_uses(server: LoopbackProcess, tmp_path: Path) -> None:
    modules = fetch_one(server, tmp_path)
    assert {"requests", "joblib", "tenacity", "tqdm", "urlfleet.run.runner"} <= modules
    wrong = sorted(m for m in modules if within(m, *NOT_FOR_A_PLAIN_FETCH))
    assert not wrong, wrong


def test_the_options_that_need_more_load_it(server: LoopbackProcess, tmp_path: Path) -> None:
    robots = ServerSpec(hosts=1, latency=0.0, robots=((0, 200, "User-agent: *\nDisallow: /x"),))
    with LoopbackProcess(robots) as with_rules:
        assert "protego" in fetch_one(with_rules, tmp_path, "--robots")
    (tmp_path / "urlfleet.toml").write_text("per_host = 1\n", encoding="utf-8")
    toml = "tomllib" if sys.version_info >= (3, 11) else "tomli"
    assert toml in fetch_one(server, tmp_path)
    html = tmp_path / "run.html"
    assert "urlfleet.report.htmlreport" in fetch_one(server, tmp_path, "--html", str(html))
    assert html.is_file()


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["fetch", "--help"]])
def test_version_and_help_load_no_fetching_machinery(args: list[str], tmp_path: Path) -> None:
    modules, done = loaded(args, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "urlfleet" in done.stdout
    wrong = sorted(m for m in modules if within(m, *FETCHING))
    assert not wrong, wrong


def test_importing_urlfleet_loads_no_fetching_machinery(tmp_path: Path) -> None:
    code = "import json, sys, urlfleet; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=True)  # fmt: skip
    modules = set(json.loads(done.stdout))
    wrong = sorted(m for m in modules if within(m, *FETCHING))
    assert not wrong, wrong
    # and the names that load it still work, each on first use
    check = "import urlfleet; from urlfleet import fetch_all; print(urlfleet.fetch.__module__)"
    done = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=True)  # fmt: skip
    assert done.stdout.strip() == "urlfleet.api"
