"""The command line's contract, in process: help, version, usage errors, exit codes, a fetch.

``main`` returns the exit code; argparse itself exits (SystemExit) for --help, --version and
options it cannot parse, so those are caught here the way the shell would see them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import responses

from urlfleet import __version__
from urlfleet.cli import EXIT_OK, EXIT_USAGE, main

Capsys = pytest.CaptureFixture[str]


def exits(argv: list[str]) -> int | str | None:
    """The code argparse exits with for ``argv``."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    return exited.value.code


def test_help_is_exit_0_on_stdout(capsys: Capsys) -> None:
    assert exits(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: urlfleet") and all(
        command in out for command in ("fetch", "demo", "bench", "serve")
    )


def test_fetch_help_lists_every_contract_option(capsys: Capsys) -> None:
    assert exits(["fetch", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--jobs", "--per-host", "--delay", "--jitter", "--retries", "--max-wait",
                   "--timeout", "--max-bytes", "--out", "--save-dir", "--resume",
                   "--compare-serial", "--report", "--user-agent", "--no-progress"):  # fmt: skip
        assert option in out, option


def test_version(capsys: Capsys) -> None:
    assert exits(["--version"]) == 0
    assert capsys.readouterr().out == f"urlfleet {__version__}\n"


def test_no_command_is_exit_2_with_the_help_on_stderr(capsys: Capsys) -> None:
    assert main([]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("usage: urlfleet")
    assert "fetch the URLs listed in files" in captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["fetch", "--bogus"], "unrecognized arguments: --bogus"),
        (["nope"], "invalid choice: 'nope'"),
        (["fetch", "--jobs", "many"], "argument -j/--jobs: invalid int value: 'many'"),
        (["fetch", "--timeout", "soon"], "argument --timeout: invalid float value: 'soon'"),
        (["bench", "--jobs-list", "0"], "argument -j/--jobs-list: must be >= 1, got 0"),
        (["bench", "--jobs-list", "1,x"], "argument -j/--jobs-list: not a whole number: 'x'"),
        (["bench", "--jobs-list", ","], "argument -j/--jobs-list: give at least one"),
    ],
)
def test_what_argparse_rejects_is_exit_2(capsys: Capsys, argv: list[str], message: str) -> None:
    assert exits(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: urlfleet") and message in err and "Traceback" not in err


def empty_list(tmp_path: Path) -> str:
    listed = tmp_path / "urls.txt"
    listed.write_text("", encoding="utf-8")
    return str(listed)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--per-host", "0"], "error: bad option: per_host must be >= 1"),
        (["--jobs", "0"], "error: bad option: jobs must not be 0"),
        (["--compare-serial", "-1"], "error: bad option: --compare-serial must be >= 0"),
        (["--resume"], "error: --resume needs -o/--out FILE"),
    ],
)
def test_bad_option_values_are_exit_2_in_one_line(
    capsys: Capsys, tmp_path: Path, options: list[str], message: str
) -> None:
    assert main(["fetch", empty_list(tmp_path), *options]) == EXIT_USAGE
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(message), err


def test_a_missing_list_is_exit_2_in_one_line_naming_it(capsys: Capsys, tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "urls.txt"
    assert main(["fetch", str(missing)]) == EXIT_USAGE
    captured = capsys.readouterr()
    line = f"error: {missing}: cannot read (No such file or directory)"
    assert captured.out == "" and captured.err.splitlines() == [line]


def test_unwritable_output_is_exit_2(capsys: Capsys, tmp_path: Path) -> None:
    out = tmp_path / "no" / "such" / "dir.jsonl"
    assert main(["fetch", empty_list(tmp_path), "-o", str(out)]) == EXIT_USAGE
    assert capsys.readouterr().err.startswith(f"error: {out}: cannot write")


@responses.activate
def test_fetch_writes_one_json_line_per_url_and_exits_0(capsys: Capsys, tmp_path: Path) -> None:
    urls = [f"http://{host}.test/page/{i}" for host in ("a", "b") for i in range(3)]
    for url in urls:
        responses.get(url, body=f"body of {url}")
    listed, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
    listed.write_text("# two hosts\n" + "\n".join(urls) + "\n", encoding="utf-8")
    assert main(["fetch", str(listed), "-o", str(out), "--no-progress", "-j", "4"]) == EXIT_OK
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["url"] for r in records) == sorted(urls)
    assert all(r["ok"] and r["status"] == 200 for r in records)
    assert len(responses.calls) == len(urls)
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
