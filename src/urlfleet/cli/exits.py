"""The exit codes of every command, in one place (``urlfleet.cli`` re-exports them).

A module of its own, importing nothing, so that every part of the CLI can name them without an
import cycle through the package's ``__init__``.
"""

EXIT_OK = 0  # every URL ok
EXIT_FAILURES = 1  # some URLs failed; all of them are recorded
EXIT_USAGE = 2  # usage or input error: bad option, unreadable list, unwritable output
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM: 128 + SIGINT, as shells report it
