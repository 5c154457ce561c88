"""Saved bodies: where each URL's body goes under ``--save-dir``, and writing it atomically.

Layout, like wget's host/path tree but safe whatever the URL says::

    http://127.0.0.1:8701/a/b/page.html?x=1  ->  127.0.0.1_8701/a/b/page-<hash>.html
    https://Example.com/                     ->  example.com/index-<hash>
    http://[::1]:8080/../%2e%2e/CON          ->  ipv6_--1_8080/_CON-<hash>

* ``<hash>`` is 16 lowercase hex digits of SHA-256 over the URL exactly as given, minus any
  ``#fragment`` (fragments never reach the server, so ``/a`` and ``/a#x`` share a file). Every
  file name ends ``-<hash>`` or ``-<hash>.<ext>`` and no directory name does, so distinct URLs get
  distinct files (``/A`` vs ``/a``, ``/a`` vs ``/a/``, ``?x=1`` vs ``?x=2``), even on
  case-insensitive file systems, and a file never sits where another URL needs a directory.
* Directories are readable and lossy: host (lower-cased, userinfo dropped, port kept unless it is
  the scheme's default) and the first ``MAX_DIRS`` percent-decoded path segments, with empty,
  ``.`` and ``..`` segments dropped. Only the hash has to tell URLs apart.
* The query string only feeds the hash. The extension is the URL's own (``[A-Za-z0-9]{1,8}``,
  lower-cased); failing that, one from ``content_type``; failing that, none.
* Every component keeps only letters, digits and ``-_.~+``, never starts with ``.`` or ``-``,
  never ends with ``.``, is never a Windows device name and is at most 100 bytes of UTF-8.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
import unicodedata
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote

MAX_DIRS = 8  # deeper path segments are left out of the tree; the hash still covers them
MAX_COMPONENT_BYTES = 100  # well under every file system's 255, leaving room for temp names
HASH_CHARS = 16  # 64 bits: a collision inside one directory is not a practical concern
TEMP_INFIX = ".part-"  # temporary files are ".<final name>.part-<random>", so easy to sweep

CONTENT_TYPE_EXTENSIONS = {
    "text/html": "html", "application/xhtml+xml": "html", "application/json": "json",
    "text/plain": "txt", "text/css": "css", "text/csv": "csv", "text/javascript": "js",
    "application/javascript": "js", "application/xml": "xml", "text/xml": "xml",
    "application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif",
    "image/svg+xml": "svg", "image/webp": "webp",
}  # fmt: skip
# A fixed table, not `mimetypes`, whose answers depend on the machine's mime.types.

# Windows opens a device for these, with any extension, in any case (the superscript digits too).
_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"{p}{d}" for p in ("COM", "LPT") for d in "0123456789¹²³"}
)
_SAFE_PUNCTUATION = frozenset("-_.~+")
_UNDERSCORES = re.compile(r"_{2,}")
_EXTENSION = re.compile(r"[A-Za-z0-9]{1,8}")
# What a file name ends with; a directory name that happens to look like it gets a "_" appended.
_FILE_TAIL = re.compile(rf"-[0-9a-f]{{{HASH_CHARS}}}(\.[0-9a-z]{{1,8}})?$", re.IGNORECASE)
# RFC 3986 appendix B: matches every string, so a malformed URL never raises (urlsplit can).
_URL = re.compile(r"(?:([^:/?#]+):)?(?://([^/?#]*))?([^?#]*)", re.DOTALL)
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def body_path(save_dir: Path, url: str, *, content_type: str | None = None) -> Path:
    """Where the body of `url` is saved under `save_dir` (not created).

    Pass the same `content_type` for a URL every time (or none) to get the same path back.

    >>> body_path(Path("out"), "http://127.0.0.1:8701/a/page.html").as_posix()
    'out/127.0.0.1_8701/a/page-669590d5275cfae1.html'
    """
    url = url.partition("#")[0]
    digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]
    match = _URL.match(url)
    assert match is not None  # every group is optional, so the pattern matches any string
    scheme, authority, path = match.group(1) or "", match.group(2) or "", match.group(3)
    *segments, last = [unquote(part, errors="replace") for part in path.split("/")]
    dirs = [_directory(s) for s in segments if s not in ("", ".", "..")][:MAX_DIRS]
    name = _file_name(last, digest, content_type)
    return save_dir.joinpath(_directory(_host_name(scheme, authority)), *dirs, name)


def _host_name(scheme: str, authority: str) -> str:
    """The host directory's raw name: ``example.com``, ``127.0.0.1_8701``, ``ipv6_--1_8080``."""
    hostport = authority.rpartition("@")[2]  # userinfo holds credentials: never on disk
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        host, port = "ipv6_" + host.replace(":", "-"), rest.removeprefix(":")
    else:
        host, _, port = hostport.partition(":")
    host = unquote(host, errors="replace").lower()
    if port in ("", _DEFAULT_PORTS.get(scheme.lower())):
        return host
    return f"{host}_{port}"


def _file_name(last: str, digest: str, content_type: str | None) -> str:
    stem, dot, extension = last.rpartition(".")
    if not (dot and stem.strip(".") and _EXTENSION.fullmatch(extension)):
        stem, extension = last, _content_type_extension(content_type)
    tail = f"-{digest}" + (f".{extension.lower()}" if extension else "")
    if last in ("", ".", ".."):
        return "index" + tail
    return _clean(stem, MAX_COMPONENT_BYTES - len(tail)) + tail


def _content_type_extension(content_type: str | None) -> str:
    media_type = (content_type or "").partition(";")[0].strip().lower()
    return CONTENT_TYPE_EXTENSIONS.get(media_type, "")


def _directory(raw: str) -> str:
    name = _clean(raw, MAX_COMPONENT_BYTES - 1)
    # casefold, as a case-insensitive file system would: "ﬀ" folds to "ff", a hex tail.
    return name + "_" if _FILE_TAIL.search(name.casefold()) else name


def _clean(text: str, limit: int) -> str:
    """`text` as one safe, never empty name component of at most `limit` bytes of UTF-8."""
    kept = "".join(
        ch if ch.isalnum() or ch in _SAFE_PUNCTUATION else "_"
        for ch in unicodedata.normalize("NFC", text)
    )
    kept = _UNDERSCORES.sub("_", kept).encode()[: limit - 1].decode("utf-8", "ignore")
    # No leading "." (hidden files, "..", our temp names) or "-" (read as an option by tools);
    # no trailing "." (Windows drops it, so "a." and "a" would be one file there).
    kept = kept.lstrip(".-").rstrip(".") or "_"
    if kept.partition(".")[0].upper() in _DEVICES:
        kept = "_" + kept  # the byte kept in reserve above
    return kept


class SavedBody:
    """Writes one body to a temporary file beside its final path and renames it into place only
    when complete (os.replace), so no partial file ever looks finished.

        with SavedBody(path) as body:
            body.write(chunk)
            body.commit()  # atomic rename; returns the final Path

    Leaving the block without commit() removes the temporary file. OSError propagates.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bytes_written = 0
        self._temp: Path | None = None
        self._file: BinaryIO | None = None

    def __enter__(self) -> SavedBody:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while self._file is None:
            temp = self.path.with_name(f".{self.path.name}{TEMP_INFIX}{secrets.token_hex(4)}")
            # "xb" rather than mkstemp: the same umask-based mode as any other file (not 0600),
            # and exclusive creation, so two writers of one URL never share a temporary file.
            with contextlib.suppress(FileExistsError):
                self._file, self._temp = temp.open("xb"), temp
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._discard()

    def write(self, chunk: bytes) -> None:
        """Append `chunk` to the temporary file: ``body.write(b"...")``."""
        if self._file is None:
            raise ValueError(f"{self.path}: not open (use `with`, before commit())")
        self._file.write(chunk)
        self.bytes_written += len(chunk)

    def commit(self) -> Path:
        """Close the temporary file and rename it to the final path, which is returned."""
        if self._file is None or self._temp is None:
            raise ValueError(f"{self.path}: not open (use `with`, before commit())")
        # If either step fails, the error leaves the `with` block and __exit__ removes the temp.
        self._file.close()  # flushes; a full disk shows up here, before the rename
        self._file = None
        self._temp.replace(self.path)
        self._temp = None
        return self.path

    def _discard(self) -> None:
        # Cleanup must not replace the exception that brought us here, so its own errors are
        # dropped; a temporary file left behind is still recognisable by its name.
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        if self._temp is not None:
            with contextlib.suppress(OSError):
                self._temp.unlink(missing_ok=True)
            self._temp = None
