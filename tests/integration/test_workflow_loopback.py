"""The README's workflow, end to end: a CSV of pages fetched with a header and a cookie into a
CSV that keeps the pages' columns, then fetched again the next day asking only what changed."""

from __future__ import annotations

import csv
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from urlfleet.loopback import LoopbackProcess

pytestmark = pytest.mark.integration


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "urlfleet", "fetch", "--no-progress", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def rows_of(path: Path) -> dict[str, dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return {row["title"]: row for row in csv.DictReader(handle)}


def test_csv_of_pages_with_header_and_cookie_then_only_what_changed(
    server: LoopbackProcess, tmp_path: Path
) -> None:
    token = uuid.uuid4().hex[:10]
    first_host, second_host = server.base_urls[0], server.base_urls[1]
    (tmp_path / "pages.csv").write_text(
        f"title,url\nhome,{first_host}/etag/{token}-home\nabout,{second_host}/etag/{token}-about\n",
        encoding="utf-8",
    )
    shaping = ["-H", "X-Team: newsroom", "--cookie", "consent=yes"]
    done = run_cli(tmp_path, "pages.csv", *shaping, "-o", "results.csv")
    assert done.returncode == 0, done.stderr
    today = rows_of(tmp_path / "results.csv")
    assert set(today) == {"home", "about"}
    assert all(row["ok"] == "true" and row["status"] == "200" for row in today.values())
    assert today["home"]["url"].endswith(f"/etag/{token}-home")

    done = run_cli(tmp_path, "pages.csv", *shaping, "--revalidate", "results.csv",
                   "-o", "tomorrow.csv")  # fmt: skip
    assert done.returncode == 0, done.stderr
    tomorrow = rows_of(tmp_path / "tomorrow.csv")
    assert all(row["unchanged"] == "true" and row["status"] == "304" for row in tomorrow.values())
    assert all(row["ok"] == "true" and row["bytes"] == "0" for row in tomorrow.values())

    seen = server.records(token)
    assert len(seen) == 4
    for record in seen:  # both runs, both hosts: the header and the cookie as given
        assert record.headers["x-team"] == "newsroom"
        assert record.headers["cookie"] == "consent=yes"
    asked_again = [r for r in seen if "if-none-match" in r.headers]
    assert sorted(r.status for r in asked_again) == [304, 304]
