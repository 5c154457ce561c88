"""--save-dir against the real server: exact bytes, whole files only, never outside DIR."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import urlfleet
from urlfleet.loopback import LoopbackProcess

pytestmark = pytest.mark.integration


def every_file(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_bodies_are_saved_whole_and_inside(server: LoopbackProcess, tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:8]
    base = server.base_urls[0]
    save = tmp_path / "bodies"
    urls = [
        f"{base}/bytes/100000/{token}/big.bin",
        f"{base}/page/{token}/a",
        f"{base}/page/{token}/a/",
        f"{base}/%2e%2e/%2e%2e/{token}/escape",
        f"{base}/page/{token}/..%2f..%2fetc%2fpasswd",
        f"{base}/bytes/5000/{token}/cut",
        f"{base}/status/404/{token}/missing",
    ]
    results = urlfleet.fetch_all(urls, save_dir=save, max_bytes=4000, keep_content=True)
    by_url = {r.url: r for r in results}
    big = by_url[urls[0]]
    assert not big.ok and big.truncated and big.saved_to is None  # cut off: not saved
    for url in urls[1:5]:
        result = by_url[url]
        assert result.ok and result.saved_to is not None, url
        saved = Path(result.saved_to)
        assert saved.resolve().is_relative_to(save.resolve())
        assert saved.read_bytes() == result.content
    assert by_url[urls[6]].saved_to is None  # error pages are not saved
    files = every_file(save)
    assert len(files) == 4  # no temporary or partial file left behind
    assert all(not f.name.startswith(".") for f in files)
    assert not any(tmp_path.glob("*passwd*")) and not (tmp_path / token).exists()


def test_saved_bytes_equal_the_server_body(server: LoopbackProcess, tmp_path: Path) -> None:
    url = f"{server.base_urls[1]}/bytes/300000/{uuid.uuid4().hex}"
    (result,) = urlfleet.fetch_all([url], save_dir=tmp_path)
    assert result.ok and result.saved_to
    data = Path(result.saved_to).read_bytes()
    expected = (b"urlfleet" * (300000 // 8 + 1))[:300000]
    assert hashlib.sha256(data).digest() == hashlib.sha256(expected).digest()


def test_an_unwritable_save_dir_is_exit_2(server: LoopbackProcess, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x", encoding="utf-8")
    urls = [f"{base}/page/{uuid.uuid4().hex}" for base in server.base_urls]
    out = tmp_path / "out.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "urlfleet", "fetch", "-", "-o", str(out),
         "--save-dir", str(blocker / "bodies")],
        input="\n".join(urls), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "cannot save bodies" in done.stderr and "Traceback" not in done.stderr
    assert all(line.endswith("}") for line in out.read_text(encoding="utf-8").splitlines())
