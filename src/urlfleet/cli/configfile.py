"""``urlfleet.toml``: defaults for ``urlfleet fetch`` options, and limits and headers per host.

The file in the working directory is read unless ``--no-config``; ``--config FILE`` names
another. Its top-level keys are the long names of ``fetch`` options (dashes or underscores),
checked against the parser's own actions, so a new option needs no second list here. They
become the parser's defaults, so the command line always wins (an appended option such as
``-H`` adds to the file's list). ``[hosts."NAME[:PORT]"]`` tables give one host ``per_host``,
``delay`` and ``headers``; those settings become FetchConfig's ``host_limits`` and
``host_headers``.

    per_host = 4
    header = ["Accept: application/json"]

    [hosts."api.example.com"]
    per_host = 1
    delay = 0.5
    headers = {X-Api-Key = "..."}
"""

from __future__ import annotations

import argparse
import functools
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from urlfleet.config import HostLimits
from urlfleet.errors import InputError

# Reading and printing a file's settings (configread) loads only when there is a file or
# --print-config: most runs have neither.
if TYPE_CHECKING:
    from urlfleet.cli.configread import HostSection

__all__ = [
    "CONFIG_NAME",
    "add_config_options",
    "finish_hosts",
    "prepare_fetch",
    "print_config",
]

CONFIG_NAME = "urlfleet.toml"
_MASK = "***"


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """``--config``, ``--no-config`` and ``--print-config``, in a group of their own."""
    group = parser.add_argument_group("configuration file")
    group.add_argument("--config", type=Path, metavar="FILE",
                       help=f"read option defaults and [hosts.\"NAME\"] tables from FILE "
                       f"(default: ./{CONFIG_NAME} when there is one)")  # fmt: skip
    group.add_argument("--no-config", action="store_true", help=f"ignore ./{CONFIG_NAME}")
    group.add_argument("--print-config", action="store_true",
                       help="print the settings of this run (the file's and the command "
                       "line's) as TOML, header and cookie values masked, and exit")  # fmt: skip


def prepare_fetch(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """When ``argv`` runs ``fetch``: read its configuration file into the fetch parser's
    defaults (before the real parse, so the command line overrides them), and make the
    handler finish the host tables and answer ``--print-config``. A bad file is an
    InputError naming ``FILE:LINE``."""
    words = list(argv)
    # The top-level parser has only flags, so its first other word names the command.
    command = next((i for i, word in enumerate(words) if not word.startswith("-")), None)
    if command is None or words[command] != "fetch":
        return
    fetch = _subcommand(parser, "fetch")
    path = _chosen_file(words[command + 1 :])
    if path is not None:
        from urlfleet.cli.configread import read_config

        defaults, hosts = read_config(fetch, path)
        fetch.set_defaults(**defaults, config_hosts=hosts)
    run = fetch.get_default("handler")
    fetch.set_defaults(handler=functools.partial(_run_fetch, fetch, run))


def print_config(fetch: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Print the run's settings as TOML, header and cookie values masked."""
    from urlfleet.cli.configread import option_key, settable_options

    lines = ["# urlfleet fetch: the settings of this run (configuration file, then command line)"]
    for action in settable_options(fetch):
        key, value = option_key(action), getattr(args, action.dest, None)
        if value is None:
            lines.append(f"# {key}: not set")
        else:
            lines.append(f"{key} = {_toml(_masked(action.dest, value))}")
    for host in sorted({*args.host_limits, *args.host_headers}):
        lines += ["", f"[hosts.{_toml(host)}]"]
        if host in args.host_limits:
            limits = args.host_limits[host]
            lines += [f"per_host = {limits.per_host}", f"delay = {_toml(limits.delay)}"]
        if host in args.host_headers:
            shown = [f"{_toml(name)} = {_toml('' if value is None else _MASK)}"
                     for name, value in args.host_headers[host].items()]  # fmt: skip
            lines.append(f"headers = {{{', '.join(shown)}}}")
    print("\n".join(lines))
    return 0


def _run_fetch(
    fetch: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace], int],
    args: argparse.Namespace,
) -> int:
    finish_hosts(args)
    return print_config(fetch, args) if args.print_config else run(args)


def finish_hosts(args: argparse.Namespace) -> None:
    """Set ``args.host_limits`` and ``args.host_headers`` from the file's host tables, now
    that the run's ``--per-host`` and ``--delay`` (for what a table leaves out) are known."""
    sections: dict[str, HostSection] = getattr(args, "config_hosts", None) or {}
    try:
        args.host_limits = {
            host: HostLimits(
                per_host=args.per_host if section.per_host is None else section.per_host,
                delay=args.delay if section.delay is None else section.delay,
            )
            for host, section in sections.items()
            if section.per_host is not None or section.delay is not None
        }
    except ValueError as exc:
        raise InputError(f"bad option: {exc}") from exc
    args.host_headers = {host: dict(s.headers) for host, s in sections.items() if s.headers}


def _subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            command: argparse.ArgumentParser = action.choices[name]
            return command
    raise LookupError(name)


def _chosen_file(argv: Sequence[str]) -> Path | None:
    # A pre-parse of the file options alone. A usage error in them is left to the real parse.
    pre = argparse.ArgumentParser(prog="urlfleet fetch", add_help=False, exit_on_error=False)
    add_config_options(pre)
    try:
        known, _ = pre.parse_known_args(argv)
    except argparse.ArgumentError:
        return None
    if known.config is not None and known.no_config:
        raise InputError("bad option: --config and --no-config contradict each other")
    if known.no_config:
        return None
    if known.config is not None:
        return Path(known.config)
    default = Path(CONFIG_NAME)
    return default if default.is_file() else None


# -- printing --------------------------------------------------------------------------------


def _masked(dest: str, value: Any) -> Any:
    # Header and cookie values carry tokens: their names show, their values never do.
    if isinstance(value, list):
        return [_masked(dest, item) for item in value]
    if not isinstance(value, str) or dest.startswith("secret"):  # --secret-header: names only
        return value
    for word, separator in (("header", ":"), ("cookie", "=")):
        if word in dest:
            name, found, rest = value.partition(separator)
            if not found:
                return _MASK
            return f"{name}{separator} {_MASK}" if rest.strip() else value  # 'Name:' leaves out
    return value


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if math.isfinite(value) else str(value)  # TOML has inf and nan
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    # JSON's string escapes are TOML's; DEL, which JSON leaves bare, TOML does not allow.
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")
