"""urlfleet.toml: option defaults from the file, the command line over them, host tables,
FILE:LINE errors, --print-config with secrets masked, --config and --no-config."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from urlfleet.cli import build_parser, main
from urlfleet.cli.configfile import finish_hosts, prepare_fetch
from urlfleet.cli.options import config_from
from urlfleet.config import FetchConfig, HostLimits

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(where: Path, text: str, name: str = "urlfleet.toml") -> Path:
    path = where / name
    path.write_text(text, encoding="utf-8")
    return path


def config_for(*words: str) -> tuple[FetchConfig, Any]:
    """The FetchConfig (and Namespace) ``urlfleet fetch WORDS`` would run with."""
    parser = build_parser()
    argv = ["fetch", *words]
    prepare_fetch(parser, argv)
    args = parser.parse_args(argv)
    finish_hosts(args)
    return config_from(args), args


def printed(capsys: pytest.CaptureFixture[str], *words: str) -> dict[str, Any]:
    code = main(["fetch", *words, "--print-config"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return tomllib.loads(out)


def failure(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    code = main(["fetch", *words, "--print-config"])
    out, err = capsys.readouterr()
    assert code == 2 and not out
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err.strip()


def test_the_file_sets_defaults_and_the_command_line_wins(workdir: Path) -> None:
    write(workdir, 'per_host = 4\ndelay = 0.5\nheader = ["X-A: 1", "X-C: 3"]\nrobots = true\n'
                   'out = "results.jsonl"\nmax-wait = 5\ninput_format = "csv"\n')  # fmt: skip
    config, args = config_for("--delay", "0.1", "-H", "X-B: 2", "-H", "X-C: 9")
    assert (config.per_host, config.delay, config.robots, config.max_wait) == (4, 0.1, True, 5.0)
    # -H adds to the file's list; the same name given again is the command line's value.
    assert dict(config.headers) == {"X-A": "1", "X-C": "9", "X-B": "2"}
    assert args.out == Path("results.jsonl") and args.input_format == "csv"
    config, _ = config_for("--per-host", "1")
    assert (config.per_host, config.delay) == (1, 0.5)


def test_without_a_file_the_defaults_are_the_parsers(workdir: Path) -> None:
    config, args = config_for()
    assert config == FetchConfig(keep_content=True)
    assert args.out is None and not config.host_limits


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ("jobs = 4\n\nbogus = 1\n", 3, "unknown key 'bogus'"),
        ('# comment\njobs = "x"\n', 2, "jobs: wants an integer, got a string"),
        ('delay = "fast"\n', 1, "delay: wants a number, got a string"),
        ("retries = 1.5\n", 1, "retries: wants an integer, got a number"),
        ("robots = 1\n", 1, "robots: wants true or false"),
        ("out = 3\n", 1, "out: wants a string, got an integer"),
        ("header = {A = 1}\n", 1, "header: wants a list of strings"),
        ('jobs = 2\ninput-format = "xml"\n', 2, "'xml' is not one of lines, jsonl"),
        ("jobs = 2\ndelay = -1\n", 2, "--delay must be >= 0 seconds"),
        ("per_host = 0\n", 1, "per_host must be >= 1"),
        ('files = ["a.txt"]\n', 1, "unknown key 'files'"),
        ("jobs = 1\n[other]\nx = 1\n", 2, "unknown key 'other'"),
        ('jobs = 1\n[hosts."a.test"]\nper_host = 1\nspeed = 2\n', 4, "hosts.a.test: unknown key"),
        ('delay = 1\n[hosts."a.test"]\ndelay = "slow"\n', 3, "hosts.a.test.delay: wants a num"),
        ('[hosts."a.test"]\n\nper-host = 1.5\n', 3, "hosts.a.test.per-host: wants an int"),
        ('[hosts."a.test"]\nper_host = 0\n', 2, "per_host must be >= 1"),
        ('[hosts."a.test"]\ndelay = inf\n', 2, "finite number of seconds"),
        ('[hosts.a]\nheaders = {"bad name" = "x"}\n', 2, "bad header name 'bad name'"),
        ('[hosts.a]\nheaders = "X: y"\n', 2, "hosts.a.headers: wants a table"),
        ("hosts = 3\n", 1, "hosts: wants one table per host"),
    ],
)
def test_a_bad_key_or_value_is_one_line_naming_file_and_line(
    workdir: Path, capsys: pytest.CaptureFixture[str], text: str, line: int, says: str
) -> None:
    write(workdir, text)
    err = failure(capsys)
    assert err.startswith(f"error: urlfleet.toml:{line}: ") and says in err


def test_a_toml_syntax_error_names_its_line(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(workdir, "jobs = 4\n# fine\ndelay = = 2\n")
    assert failure(capsys).startswith("error: urlfleet.toml:3: Invalid value")
    write(workdir, 'jobs = 4\nuser_agent = "never closed\n')
    assert failure(capsys).startswith("error: urlfleet.toml:2: ")


def test_a_header_value_in_an_error_is_never_shown(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(workdir, '[hosts."a.test"]\nheaders = {Authorization = "Bearer s3cret\\nX: y"}\n')
    err = failure(capsys)
    assert err.startswith("error: urlfleet.toml:2: ") and "s3cret" not in err


def test_host_tables_become_host_limits_and_host_headers(workdir: Path) -> None:
    write(workdir, '[hosts."API.Example.com:443"]\nper_host = 1\nheaders = {X-Api-Key = "k"}\n\n'
                   '[hosts."b.test:8080"]\ndelay = 2\n\n'
                   '[hosts."c.test"]\nheaders = {User-Agent = ""}\n')  # fmt: skip
    config, _ = config_for("--per-host", "3", "--delay", "0.25")
    # What a table leaves out is the run's own --per-host / --delay.
    assert dict(config.host_limits) == {
        "api.example.com": HostLimits(per_host=1, delay=0.25),
        "b.test:8080": HostLimits(per_host=3, delay=2.0),
    }
    assert {host: dict(h) for host, h in config.host_headers.items()} == {
        "api.example.com": {"X-Api-Key": "k"},
        "c.test": {"User-Agent": None},  # an empty value leaves the header out, as -H 'Name:'
    }


def test_print_config_masks_secrets_and_fetches_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        workdir,
        'header = ["Authorization: Bearer t0ken1", "X-Off:"]\nsecret_header = ["X-K"]\n'
        '[hosts."a.test"]\nper_host = 1\nheaders = {X-K = "t0ken2", Accept = ""}\n',
    )
    code = main(["fetch", "no-such-list.txt", "-H", "Cookie: sid=t0ken3", "--print-config"])
    out, err = capsys.readouterr()
    assert code == 0 and not err  # had it fetched, the missing list would be exit 2
    assert "t0ken" not in out
    settings = tomllib.loads(out)
    assert settings["header"] == ["Authorization: ***", "X-Off:", "Cookie: ***"]
    assert settings["secret_header"] == ["X-K"]  # names, not secrets
    assert settings["hosts"] == {"a.test": {"per_host": 1, "delay": 0.0,
                                            "headers": {"X-K": "***", "Accept": ""}}}  # fmt: skip
    assert settings["jobs"] == 32 and settings["user_agent"].startswith("urlfleet/")


def test_print_config_output_reads_back_as_the_same_configuration(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        workdir,
        'per_host = 3\nout = "o.jsonl"\nuser_agent = "a \\"quoted\\" \\\\ agent"\n'
        '[hosts."b.test:81"]\ndelay = 1.5\n',
    )
    text = printed_text(capsys, "--robots", "--max-time", "9")
    first = tomllib.loads(text)
    write(workdir, text)
    assert printed(capsys) == first
    assert first["per_host"] == 3 and first["robots"] and first["max_time"] == 9.0
    assert first["user_agent"] == 'a "quoted" \\ agent'
    assert first["hosts"] == {"b.test:81": {"per_host": 3, "delay": 1.5}}


def printed_text(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    assert main(["fetch", *words, "--print-config"]) == 0
    return capsys.readouterr().out


def test_no_config_ignores_the_file(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(workdir, 'jobs = "not a number"\n')
    assert printed(capsys, "--no-config")["jobs"] == 32
    assert "urlfleet.toml:1:" in failure(capsys)


def test_the_file_is_found_in_the_working_directory_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    write(here, "jobs = 7\n")
    monkeypatch.chdir(here)
    assert printed(capsys)["jobs"] == 7
    monkeypatch.chdir(elsewhere)
    assert printed(capsys)["jobs"] == 32
    other = write(tmp_path, "jobs = 9\n", name="team.toml")
    assert printed(capsys, "--config", str(other))["jobs"] == 9
    assert printed(capsys, f"--config={other}", "-j", "5")["jobs"] == 5


def test_config_file_option_errors(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert failure(capsys, "--config", "missing.toml") == (
        "error: missing.toml: cannot read it (No such file or directory)"
    )
    write(workdir, "jobs = 7\n", name="x.toml")
    assert "contradict" in failure(capsys, "--config", "x.toml", "--no-config")
    (workdir / "latin1.toml").write_bytes(b'user_agent = "caf\xe9"\n')
    assert "not UTF-8" in failure(capsys, "--config", "latin1.toml")


def test_only_fetch_reads_the_file(workdir: Path) -> None:
    write(workdir, "bogus = 1\n")
    parser = build_parser()
    prepare_fetch(parser, ["demo", "--hosts", "2"])  # no error: demo does not read it
    prepare_fetch(parser, ["--version"])
    with pytest.raises(ValueError, match="urlfleet.toml:1: unknown key 'bogus'"):
        prepare_fetch(parser, ["fetch"])
