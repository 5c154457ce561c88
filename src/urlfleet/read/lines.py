"""Lines of an input, read in bounded pieces and numbered as the file numbers them.

A line too long or not UTF-8 is reported as ``FILE:LINE: reason`` (through the ``Report``
callback the reader gives) and reading goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import BinaryIO

from urlfleet.urls import MAX_URL_LENGTH

# A line this long (in bytes) is skipped without being held in memory: no URL is that long,
# and /dev/zero or a binary file may hold no newline at all.
MAX_LINE_BYTES = 4 * MAX_URL_LENGTH + 1024

# How a problem is told to the reader: the input's name, the line number, the reason.
Report = Callable[[str, int, str], None]


def bounded_lines(handle: BinaryIO, limit: int) -> Iterator[bytes | None]:
    """The lines of ``handle`` with their newlines, or None for each line longer than ``limit``.

    An overlong line is skipped in ``limit``-sized pieces, so memory stays bounded whatever
    the input holds.
    """
    while True:
        line = handle.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        while line and not line.endswith(b"\n"):  # drain the rest of the overlong line
            line = handle.readline(limit + 1)
        yield None


def decoded(name: str, handle: BinaryIO, limit: int, report: Report) -> Iterator[tuple[int, str]]:
    """The numbered lines of ``handle`` as text; a line too long or not UTF-8 is
    reported and comes as an empty line, so that numbers stay those of the file."""
    for number, raw in enumerate(bounded_lines(handle, limit), start=1):
        if raw is None:
            report(name, number, f"line longer than {limit} bytes")
            yield number, "\n"
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            report(name, number, "not valid UTF-8")
            yield number, "\n"
            continue
        if number == 1:
            line = line.lstrip("\ufeff")  # a BOM from Windows editors is not content
        yield number, line


def count_entries(handle: BinaryIO) -> int:
    """How many lines of ``handle`` are not blank or comments (an overlong one counts):
    cheap, no line is decoded or parsed."""
    return sum(
        1
        for raw in bounded_lines(handle, MAX_LINE_BYTES)
        if raw is None or (raw.strip() and not raw.lstrip().startswith(b"#"))
    )
