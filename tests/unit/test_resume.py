from __future__ import annotations

import json
from pathlib import Path

import pytest

from urlfleet.read.resume import DoneUrls, is_done, repair_torn_tail


@pytest.mark.parametrize(
    ("record", "done"),
    [
        ({"ok": True, "status": 200}, True),
        ({"ok": False, "status": 404}, True),
        ({"ok": False, "status": 410}, True),
        ({"ok": False, "status": 429}, False),
        ({"ok": False, "status": 408}, False),
        ({"ok": False, "status": 503}, False),
        ({"ok": False, "status": None, "error": "ConnectionError: x"}, False),
        ({"ok": False, "status": 200, "error": "ReadTimeout: x"}, False),
    ],
)
def test_is_done(record: dict[str, object], done: bool) -> None:
    assert is_done(record) is done


def test_done_urls_from_a_results_file(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    rows = [
        {"url": "http://a.test/1", "ok": True, "status": 200},
        {"url": "http://a.test/2", "ok": False, "status": 503},
        {"url": "http://a.test/3", "ok": False, "status": 404},
        {"url": "http://u:***@a.test/4", "ok": True, "status": 200},
    ]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows) + "garbage\n", encoding="utf-8")
    bad: list[int] = []
    done = DoneUrls.read(out, on_bad_line=bad.append)
    assert bad == [5] and len(done) == 3
    assert "http://a.test/1" in done and "http://a.test/3" in done
    assert "http://a.test/2" not in done and "http://a.test/9" not in done
    assert "http://u:secret@a.test/4" in done  # records hold the URL with its password masked
    skipped = [0]
    assert list(done.skip_done(["http://a.test/1", "http://a.test/2"], skipped)) == [
        "http://a.test/2"
    ]
    assert skipped == [1]


@pytest.mark.parametrize(
    ("content", "kept"),
    [
        (b"", b""),
        (b'{"a": 1}\n', b'{"a": 1}\n'),
        (b'{"a": 1}\n{"b": ', b'{"a": 1}\n'),
        (b'{"b": ', b""),
        (b"x" * 200_000 + b"\n" + b"y" * 100_000, b"x" * 200_000 + b"\n"),
    ],
)
def test_repair_torn_tail(tmp_path: Path, content: bytes, kept: bytes) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(content)
    assert repair_torn_tail(out) == len(content) - len(kept)
    assert out.read_bytes() == kept
