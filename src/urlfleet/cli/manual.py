"""The command-line manual, ``docs/cli.md``, rendered from the parser itself.

``python -m urlfleet.cli.manual > docs/cli.md`` regenerates it. The text is each command's
``--help`` at a fixed width, so it does not depend on the terminal it is made in, and a test
compares the file with a fresh rendering: the manual cannot drift from the options.
"""

from __future__ import annotations

import argparse
import functools
import typing
from collections.abc import Iterator

from urlfleet._version import __version__
from urlfleet.cli import build_parser

WIDTH = 100  # columns of every help text, whatever the terminal says
REGENERATE = "python -m urlfleet.cli.manual > docs/cli.md"

INTRODUCTION = f"""\
# The `urlfleet` command line

Every command's `--help`, as `urlfleet COMMAND --help` prints it (the default User-Agent
shown as `urlfleet/<version>`). This page is generated from the argument parser: do not edit
it by hand; change the options in `src/urlfleet/cli/` and run

```sh
{REGENERATE}
```
"""


def render_manual() -> str:
    """The whole manual as markdown: the program's help, then each command's.

    >>> render_manual().startswith("# The `urlfleet` command line")
    True
    """
    parser = build_parser()
    sections = [INTRODUCTION, _section("urlfleet", parser)]
    sections += [_section(f"urlfleet {name}", sub) for name, sub in _commands(parser)]
    return "\n".join(sections)


def _commands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:  # argparse keeps its subcommands in a private action
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def _section(title: str, parser: argparse.ArgumentParser) -> str:
    return f"## `{title}`\n\n```\n{_fixed_width_help(parser).rstrip()}\n```\n"


def _fixed_width_help(parser: argparse.ArgumentParser) -> str:
    # argparse sizes help to the terminal (COLUMNS); a fixed width keeps the manual the same
    # wherever it is rendered. The parser's own formatter class is kept, only narrowed.
    original = parser.formatter_class
    factory = typing.cast("type[argparse.HelpFormatter]", original)
    parser.formatter_class = functools.partial(factory, width=WIDTH)
    try:
        text = parser.format_help()
    finally:
        parser.formatter_class = original
    # The version is left out so that a release does not change the manual.
    return text.replace(f"urlfleet/{__version__}", "urlfleet/<version>")


if __name__ == "__main__":
    print(render_manual(), end="")
