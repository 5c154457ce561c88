"""Reading ``urlfleet.toml``: its keys checked against the ``fetch`` parser's own options, its
``[hosts."NAME"]`` tables against what a host may be given, and every problem reported as one
line, ``FILE:LINE: reason``: TOML's own errors carry a line, and for a key the line is found
in the text.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from urlfleet.cli.options import check_numbers
from urlfleet.config import FetchConfig, HostLimits
from urlfleet.errors import InputError

# The TOML parser and the host-name rules are imported where used: only a run that has a
# configuration file needs them.

__all__ = ["HostSection", "option_key", "read_config", "settable_options"]

# Options about the file itself, and argparse's own: never settable from a file.
_NOT_SETTABLE = frozenset({"help", "config", "no_config", "print_config"})
_HOST_KEYS = ("per_host", "delay", "headers")
_DEFAULT_PORT = re.compile(r":(80|443)$")  # host_key drops the scheme's default port
_TOML_WHERE = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)$")
_CONFIG_FIELDS = frozenset(f.name for f in fields(FetchConfig))


@dataclass(frozen=True, slots=True)
class HostSection:
    """One ``[hosts."NAME"]`` table: None falls back to the run's ``--per-host``/``--delay``."""

    per_host: int | None = None
    delay: float | None = None
    headers: Mapping[str, str | None] = field(default_factory=dict)


def read_config(
    fetch: argparse.ArgumentParser, path: Path
) -> tuple[dict[str, Any], dict[str, HostSection]]:
    """The option defaults (by dest) and host tables of the file at ``path``; a problem is
    an InputError ``FILE:LINE: reason``."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text, as TOML must be") from exc
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - the same parser, before it joined the standard library
        import tomli as tomllib

    found = _Found(path, text)
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise found.syntax_error(exc) from exc
    hosts = _host_sections(found, table.pop("hosts", {}))
    defaults: dict[str, Any] = {}
    for key, value in table.items():
        dest, converted = _option_value(fetch, found, key, value)
        defaults[dest] = converted
    return defaults, hosts


# -- top-level keys: option defaults ---------------------------------------------------------


def settable_options(fetch: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options of ``fetch`` a file may set: all but argparse's own and the file's."""
    return [a for a in fetch._actions if a.option_strings and a.dest not in _NOT_SETTABLE]


def option_key(action: argparse.Action) -> str:
    """The key of an option in the file: its long name with underscores, as the library's."""
    long = next((s for s in action.option_strings if s.startswith("--")), action.dest)
    return long.removeprefix("--").replace("-", "_")


def _option_value(
    fetch: argparse.ArgumentParser, found: _Found, key: str, value: Any
) -> tuple[str, Any]:
    name = "--" + key.replace("_", "-")
    action = next((a for a in settable_options(fetch) if name in a.option_strings), None)
    if action is None:
        raise found.error(f"unknown key {key!r}: not an option of urlfleet fetch", key)
    try:
        converted = _converted(action, value)
        # Numbers are checked as the command line's are; the message names FILE:LINE.
        check_numbers(argparse.Namespace(**{action.dest: converted}))
        if action.dest in _CONFIG_FIELDS:  # and as the library checks them (--per-host 0)
            FetchConfig(**{action.dest: converted})
    except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
        reason = str(exc).removeprefix("bad option: ")
        raise found.error(reason if reason.startswith("-") else f"{key}: {reason}", key) from exc
    return action.dest, converted


def _converted(action: argparse.Action, value: Any) -> Any:
    """What a TOML value stands for, as the command line would have given it."""
    if action.nargs == 0:  # a flag, such as --robots
        if not isinstance(value, bool):
            raise TypeError(f"wants true or false, got {_kind(value)}")
        return action.const if value else action.default
    if isinstance(action, argparse._AppendAction):  # -H: a list, or one string
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            raise TypeError(f"wants a list of strings, got {_kind(value)}")
        return [_one(action, item) for item in items]
    return _one(action, value)


def _one(action: argparse.Action, value: Any) -> Any:
    kind = action.type
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"wants {_wanted(kind)}, got {_kind(value)}")
    if kind is int or kind is float:
        if isinstance(value, str) or kind is int and not isinstance(value, int):
            raise TypeError(f"wants {_wanted(kind)}, got {_kind(value)}")
        converted: Any = kind(value)
    elif not isinstance(value, str):
        raise TypeError(f"wants a string, got {_kind(value)}")
    else:  # str, Path or any other parser of the command line's words
        converted = value if kind is None else kind(value)  # type: ignore[operator]
    if action.choices is not None and converted not in action.choices:
        raise ValueError(f"{value!r} is not one of {', '.join(map(str, action.choices))}")
    return converted


def _wanted(kind: object) -> str:
    return "an integer" if kind is int else "a number" if kind is float else "a string"


# -- [hosts."NAME"] tables -------------------------------------------------------------------


def _host_sections(found: _Found, hosts: Any) -> dict[str, HostSection]:
    if not isinstance(hosts, dict) or not all(isinstance(t, dict) for t in hosts.values()):
        raise found.error('hosts: wants one table per host, as [hosts."api.example.com"]', "hosts")
    sections: dict[str, HostSection] = {}
    for host, table in hosts.items():
        after = found.table_line(host)
        values: dict[str, Any] = {}
        for key, value in table.items():
            dest = key.replace("-", "_")
            if dest not in _HOST_KEYS:
                raise found.error(f"hosts.{host}: unknown key {key!r} (per_host, delay and "
                                  "headers are)", key, after=after)  # fmt: skip
            try:
                values[dest] = _host_value(dest, value, host)
            except (TypeError, ValueError) as exc:
                raise found.error(f"hosts.{host}.{key}: {exc}", key, after=after) from exc
        sections[_host_key(host)] = HostSection(**values)
    return sections


def _host_value(dest: str, value: Any, host: str) -> Any:
    if dest == "headers":
        if not isinstance(value, dict):
            raise TypeError(f'wants a table of Name = "value", got {_kind(value)}')
        # An empty value leaves the header out, as -H 'Name:' does.
        headers = {name: None if text == "" else text for name, text in value.items()}
        FetchConfig(host_headers={host: headers})  # the library's checks (values never shown)
        return headers
    kind = int if dest == "per_host" else float
    if isinstance(value, bool) or not isinstance(value, (int, kind)):
        raise TypeError(f"wants {_wanted(kind)}, got {_kind(value)}")
    if isinstance(value, int) and dest == "per_host":
        HostLimits(per_host=value)  # its own checks
        return value
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number of seconds, got {value}")
    return HostLimits(per_host=1, delay=float(value)).delay


def _host_key(host: str) -> str:
    # As host_key() makes it of a URL: the canonical name, the port only when not the default.
    from urlfleet.politeness.identity import key_of

    return _DEFAULT_PORT.sub("", key_of(host))


# -- where in the file -----------------------------------------------------------------------


class _Found:
    """The file's text, to find the line a key stands on."""

    def __init__(self, path: Path, text: str) -> None:
        self.path, self.lines = path, text.splitlines()

    def error(self, reason: str, key: str, *, after: int = 0) -> InputError:
        return InputError(f"{self.path}:{self._line_of(key, after)}: {reason}")

    def table_line(self, host: str) -> int:
        name = re.escape(host)
        pattern = re.compile(rf"""^\s*\[\s*hosts\s*\.\s*(?:"{name}"|'{name}'|{name})\s*\]""")
        return next((n for n, line in self._numbered(0) if pattern.match(line)), 0)

    def syntax_error(self, exc: ValueError) -> InputError:  # a tomllib.TOMLDecodeError
        message = str(exc)
        where = _TOML_WHERE.search(message)
        line, reason = len(self.lines) or 1, _TOML_WHERE.sub("", message)
        if where and where.group(1):
            line = int(where.group(1))
            reason += f" (column {where.group(2)})"
        return InputError(f"{self.path}:{line}: {reason}")

    def _line_of(self, key: str, after: int) -> int:
        # The key at the start of a line: bare or quoted, dashes and underscores alike,
        # before '=' or a dotted name, or as a table's name.
        name = "[-_]".join(re.escape(part) for part in re.split(r"[-_]", key))
        pattern = re.compile(rf"""^\s*(?:\[+\s*)?(["']?){name}\1\s*[=.\]]""")
        return next((n for n, line in self._numbered(after) if pattern.match(line)), after or 1)

    def _numbered(self, after: int) -> Iterator[tuple[int, str]]:
        return enumerate(self.lines[after:], start=after + 1)


def _kind(value: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a table"}  # fmt: skip
    return names.get(type(value), type(value).__name__)
