"""Reading URL lists: files, '-' for stdin, directories of *.txt.

Lines are read lazily, so a list of millions of URLs never sits in memory. Blank lines and
'#' comments are skipped, exact duplicates dropped (remembered as 64-bit digests in a compact
table, about 16 bytes a URL, not strings), and every malformed line is reported as
``FILE:LINE: reason`` while reading goes on.

Anything that is not a regular file (a pipe, ``<(grep shop urls.txt)`` as ``/dev/fd/63``, a
named FIFO, ``/dev/stdin``, a terminal) is a *stream*: like ``-``, it is opened once and read
once, with no check beforehand that would consume it and no size estimate.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import sys
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit, urlunsplit

import requests

from urlfleet.errors import InputError

# RFC 9110 (section 4.1) asks clients to support URIs of at least 8,000 octets; sites do use
# long query strings. Far beyond that a "URL" is a pasted blob, not an address.
MAX_URL_LENGTH = 65_536
# A line this long (in bytes) is skipped without being held in memory: no URL is that long,
# and /dev/zero or a binary file may hold no newline at all.
MAX_LINE_BYTES = 4 * MAX_URL_LENGTH + 1024
STDIN = "-"


@dataclass(frozen=True, slots=True)
class InputProblem:
    """One malformed line: where it is and why it was skipped."""

    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be fetched, or None when it can.

    >>> url_problem("ftp://example.com/")
    "unsupported scheme 'ftp' (only http and https)"
    """
    if len(url) > MAX_URL_LENGTH:
        return f"URL longer than {MAX_URL_LENGTH} characters ({len(url)})"
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return "URL contains spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"malformed URL ({exc})"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return f"unsupported scheme {scheme!r} (only http and https)" if scheme else "no scheme"
    if not parts.hostname:
        return "no host"
    if port == 0:
        return "port 0 is not a valid port"
    return _requests_problem(url)


def _requests_problem(url: str) -> str | None:
    # The final word is requests' own: whatever it would refuse to send is malformed here.
    try:
        requests.PreparedRequest().prepare_url(url, None)
    except (requests.RequestException, ValueError, UnicodeError) as exc:
        return f"rejected by requests ({exc})"
    return None


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


def redact_url(url: str) -> str:
    """The URL with any password in it replaced by ``***``, fit for records and messages.

    >>> redact_url("http://user:secret@example.com/a")
    'http://user:***@example.com/a'
    """
    if "@" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None and parts.username is None:
        return url
    user = parts.username or ""
    hidden = f"{user}:***" if parts.password is not None else user
    netloc = hidden + "@" + parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=netloc))


def scrub(text: str, url: str) -> str:
    """``text`` with the password of ``url`` (if any) masked, e.g. in an error message."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return text
    return text.replace(f":{password}@", ":***@") if password else text


class DigestSet:
    """A set of 64-bit digests in arrays of ``"Q"``: about 16 bytes an entry, O(1) a lookup.

    CPython's ``set`` of 8-byte ``bytes`` costs over 80 bytes an entry (the object and its
    slot). Here each entry is its 8 bytes in an open-addressing table of 2**k slots kept at
    most 3/4 full and doubled when it would be fuller: 10.7 to 21 bytes an entry, 16.8 at a
    million. The digests are spread over ``PARTS`` such tables by their top bits, so that a
    table doubling (old and new side by side) adds a sliver to the peak, not half the set.

    0 marks an empty slot, so a digest of 0 is kept as 1 (one more chance in 2**64 of taking
    two URLs for one). Probing is double hashing: the first slot from the low bits, the step
    from the middle ones, made odd so that it visits every slot of a power-of-two table.

    >>> seen = DigestSet(); seen.add(d)  # True: new; a second seen.add(d) is False
    """

    PARTS = 64  # a power of two; the top 6 bits of a digest pick its table
    __slots__ = ("_tables", "_counts", "_size")

    def __init__(self, slots: int = 16) -> None:
        assert slots > 0 and slots & (slots - 1) == 0, "a power of two"
        self._tables = [array("Q", [0]) * slots for _ in range(self.PARTS)]
        self._counts = [0] * self.PARTS
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        """The tables' size in bytes."""
        return sum(len(table) * table.itemsize for table in self._tables)

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, int):
            return False
        digest = digest or 1
        table = self._tables[digest >> 58]
        return table[_slot(table, digest)] == digest

    def add(self, digest: int) -> bool:
        """Add ``digest``; False when it was there already."""
        digest = digest or 1
        part = digest >> 58
        table = self._tables[part]
        slot = _slot(table, digest)
        if table[slot] == digest:
            return False
        table[slot] = digest
        self._size += 1
        self._counts[part] = count = self._counts[part] + 1
        if 4 * count > 3 * len(table):
            grown = array("Q", [0]) * (2 * len(table))
            for held in table:
                if held:
                    grown[_slot(grown, held)] = held
            self._tables[part] = grown
        return True


def _slot(table: array[int], digest: int) -> int:
    # The digest's slot in the table, or the empty one where it would go.
    mask = len(table) - 1
    slot, step = digest & mask, (digest >> 29) | 1
    while (held := table[slot]) and held != digest:
        slot = (slot + step) & mask
    return slot


def url_digest(url: str) -> int:
    """A 64-bit digest of a URL string, for remembering it in 8 bytes."""
    return int.from_bytes(hashlib.blake2b(url.encode(), digest_size=8).digest(), "big")


class UrlReader:
    """The URLs of some list files, in order, each valid URL once.

    >>> reader = UrlReader(["urls.txt"]); reader.check(); urls = list(reader)
    """

    def __init__(
        self,
        sources: Sequence[str | os.PathLike[str]],
        *,
        on_problem: Callable[[InputProblem], None] | None = None,
        stdin: BinaryIO | None = None,
    ) -> None:
        self._sources = [os.fspath(s) for s in sources] or [STDIN]
        self._on_problem = on_problem
        self._stdin = stdin
        self.duplicates = 0
        self.malformed = 0
        self._files: list[str] | None = None

    @property
    def sources(self) -> list[str]:
        """The sources as given (``-`` when none was), directories not expanded."""
        return list(self._sources)

    def files(self) -> list[str]:
        """The files to read, directories expanded to their *.txt files (sorted).

        Listed once: a file that appears in a directory later (say, an output written there)
        is not read by this run.
        """
        if self._files is None:
            expanded: list[str] = []
            for source in self._sources:
                if source != STDIN and os.path.isdir(source):
                    txt = (str(p) for p in Path(source).glob("*.txt") if p.is_file())
                    expanded.extend(sorted(txt))
                else:
                    expanded.append(source)
            self._files = expanded
        return list(self._files)

    def check(self) -> None:
        """Raise InputError, naming the file, if any input cannot be opened for reading.

        Streams are not opened (that could consume them, or wait for a writer): only checked
        for read permission.
        """
        for source in self._sources:
            if source != STDIN and os.path.isdir(source) and not self._has_txt(source):
                raise InputError(f"{source}: directory holds no *.txt files")
        for path in self.files():
            if path == STDIN:
                continue
            if is_stream(path):
                if not os.access(path, os.R_OK):
                    raise InputError(f"{path}: cannot read (Permission denied)")
                continue
            try:
                with open(path, "rb") as handle:
                    handle.read(1)
            except OSError as exc:
                raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc

    def estimate(self) -> int | None:
        """How many URLs the files hold at most (lines that are not blank or comments).

        None when any input is a stream, which can only be read once. Cheap: no URL is parsed.
        """
        paths = self.files()
        if any(is_stream(path) for path in paths):
            return None
        total = 0
        for path in paths:
            try:
                with open(path, "rb") as handle:
                    total += sum(
                        1
                        for raw in bounded_lines(handle, MAX_LINE_BYTES)
                        if raw is None or (raw.strip() and not raw.lstrip().startswith(b"#"))
                    )
            except OSError:
                return None  # reading it for real will say what is wrong, naming the file
        return total

    @staticmethod
    def _has_txt(directory: str) -> bool:
        return any(p.is_file() for p in Path(directory).glob("*.txt"))

    def __iter__(self) -> Iterator[str]:
        seen = DigestSet()
        for path in self.files():
            for url in self._read_one(path):
                if not seen.add(url_digest(url)):
                    self.duplicates += 1
                    continue
                yield url

    def _read_one(self, path: str) -> Iterator[str]:
        if path == STDIN:
            yield from self._lines(STDIN, self._stdin or _own_stdin())
            return
        try:
            with open(path, "rb") as handle:
                yield from self._lines(path, handle)
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc

    def _lines(self, name: str, handle: BinaryIO) -> Iterator[str]:
        for number, raw in enumerate(bounded_lines(handle, MAX_LINE_BYTES), start=1):
            if raw is None:
                self._report(name, number, f"line longer than {MAX_LINE_BYTES} bytes")
                continue
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                self._report(name, number, "not valid UTF-8")
                continue
            if number == 1:
                line = line.lstrip("\ufeff")  # a BOM from Windows editors is not part of the URL
            if not line or line.startswith("#"):
                continue
            problem = url_problem(line)
            if problem is None:
                yield line
            else:
                self._report(name, number, problem)

    def _report(self, name: str, number: int, reason: str) -> None:
        self.malformed += 1
        if self._on_problem is not None:
            self._on_problem(InputProblem(name, number, reason))


def _own_stdin() -> BinaryIO:
    # A buffer of our own on file descriptor 0, not sys.stdin's: the reading thread may still
    # be blocked in a read when the process exits, and the interpreter's shutdown takes the
    # lock of sys.stdin's buffer; held by that thread, it aborts the process (exit 134).
    return io.BufferedReader(io.FileIO(sys.stdin.fileno(), "rb", closefd=False))
