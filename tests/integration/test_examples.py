"""The examples run as a user runs them, from a checkout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("script", ["titles.py", "crawl_one_level.py"])
def test_example_runs(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "fetched" in done.stdout or "titles from" in done.stdout


def test_demo_list_in_the_repository_is_the_packaged_one() -> None:
    top = Path(__file__).resolve().parents[2]
    assert (top / "urls" / "demo.txt").read_bytes() == (
        top / "src" / "urlfleet" / "urls" / "demo.txt"
    ).read_bytes()
