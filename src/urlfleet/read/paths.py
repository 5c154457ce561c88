"""The inputs as paths: ``-`` for stdin, files, directories of *.txt, sitemap URLs.

Anything that is not a regular file (a pipe, ``<(grep shop urls.txt)`` as ``/dev/fd/63``, a
named FIFO, ``/dev/stdin``, a terminal) is a *stream*: like ``-``, it is opened once and read
once, with no check beforehand that would consume it and no size estimate.
"""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from urlfleet.errors import InputError
from urlfleet.read.lines import count_entries

STDIN = "-"


def is_stream(path: str) -> bool:
    """True for ``-`` and for anything that exists but is not a regular file or a directory.

    A stream can be read only once (a pipe, a FIFO, a terminal), so it is never opened to be
    checked or counted: only to be read, once. ``stat`` opens nothing, so this consumes nothing.
    """
    if path == STDIN:
        return True
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False  # missing or unreadable: the check says so, naming the file
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def is_url(source: str) -> bool:
    """True for an input given as an http(s) URL: a sitemap to fetch, not a file."""
    return source[:8].lower().startswith(("http://", "https://"))


def expand(sources: list[str]) -> list[str]:
    """``sources`` with each directory replaced by its *.txt files (sorted)."""
    expanded: list[str] = []
    for source in sources:
        if source != STDIN and not is_url(source) and os.path.isdir(source):
            txt = (str(p) for p in Path(source).glob("*.txt") if p.is_file())
            expanded.extend(sorted(txt))
        else:
            expanded.append(source)
    return expanded


def check_source(source: str, kind: str) -> None:
    """Raise InputError for a source that can hold no list: a URL not read as a sitemap
    (``kind`` is how it would be read), or a directory with no *.txt files."""
    if is_url(source) and kind != "sitemap":
        raise InputError(
            f"{source}: a URL, not a file; to read it as a sitemap, give "
            "--input-format sitemap (a URL ending in .xml is one already)"
        )
    if source != STDIN and os.path.isdir(source) and not _has_txt(source):
        raise InputError(f"{source}: directory holds no *.txt files")


def check_stream(path: str) -> None:
    """Raise InputError unless the stream ``path`` may be read; it is not opened (that
    could consume it, or wait for a writer)."""
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: cannot read (Permission denied)")


@contextmanager
def reading(path: str) -> Iterator[BinaryIO]:
    """``path`` open in binary; an OSError, on opening or reading, is an InputError naming it."""
    try:
        with open(path, "rb") as handle:
            yield handle
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def estimate_entries(paths: list[str], format_for: Callable[[str], str]) -> int | None:
    """How many URLs ``paths`` hold at most (``format_for`` says how each is read); None
    when any is a stream, a sitemap URL or a sitemap file, or cannot be read."""
    if any(is_stream(p) or is_url(p) or format_for(p) == "sitemap" for p in paths):
        return None
    total = 0
    for path in paths:
        header = format_for(path) in ("csv", "tsv")
        try:
            with open(path, "rb") as handle:
                lines = count_entries(handle)
        except OSError:
            return None  # reading it for real will say what is wrong, naming the file
        total += max(0, lines - header)
    return total


def own_stdin() -> BinaryIO:
    """A binary reader of file descriptor 0 that is not ``sys.stdin``'s buffer."""
    # Not sys.stdin's: the reading thread may still be blocked in a read when the process
    # exits, and the interpreter's shutdown takes the lock of sys.stdin's buffer; held by
    # that thread, it aborts the process (exit 134).
    return io.BufferedReader(io.FileIO(sys.stdin.fileno(), "rb", closefd=False))


def _has_txt(directory: str) -> bool:
    return any(p.is_file() for p in Path(directory).glob("*.txt"))
