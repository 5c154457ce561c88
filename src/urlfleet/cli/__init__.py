"""The command line: ``urlfleet fetch | report | demo | bench | serve``, a thin layer.

Data (JSON lines) goes to stdout or ``-o``; the progress bar, problems and the summary go to
stderr, so ``urlfleet fetch urls.txt > results.jsonl`` keeps the two apart.

Each command's module turns its argparse Namespace into library values (a FetchConfig, a
SessionOptions, plain arguments) in its handler; nothing below a handler sees the Namespace.
Heavy imports (the loopback server, dask, matplotlib) happen inside the commands that need
them, so ``urlfleet fetch`` never pays for them; building the parser loads none of a run's
modules, so ``--help`` and ``--version`` are quick.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from urlfleet._version import __version__
from urlfleet.cli.bench import add_bench_command
from urlfleet.cli.configfile import add_config_options, prepare_fetch
from urlfleet.cli.demo import add_demo_command, add_serve_command
from urlfleet.cli.exits import EXIT_FAILURES, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from urlfleet.cli.fetchargs import add_fetch_command
from urlfleet.cli.report import add_report_command
from urlfleet.cli.startup import collector_held, thaw
from urlfleet.errors import ClusterError, InputError, SaveError

__all__ = [
    "EXIT_FAILURES",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "main",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    try:
        return _main(argv)
    except KeyboardInterrupt:  # before a run has begun (a run handles its own signals)
        say("interrupted")
        return EXIT_INTERRUPTED
    finally:
        thaw()


def _main(argv: Sequence[str] | None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    with collector_held():
        parser = build_parser()
        try:
            prepare_fetch(parser, words)  # urlfleet.toml: defaults the command line, then it
        except InputError as exc:
            say(f"error: {exc}")
            return EXIT_USAGE
        args = parser.parse_args(words)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (InputError, SaveError, ClusterError) as exc:
        say(f"error: {exc}")
        return EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="urlfleet",
        description="Fetch a list of URLs fast and politely, and see what concurrency bought.",
    )
    parser.add_argument("--version", action="version", version=f"urlfleet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_fetch_command(commands)
    add_config_options(commands.choices["fetch"])
    add_report_command(commands)
    add_demo_command(commands)
    add_bench_command(commands)
    add_serve_command(commands)
    return parser


def say(message: str) -> None:
    """``session.say``, imported only when there is something to say."""
    from urlfleet.cli.session import say

    say(message)
