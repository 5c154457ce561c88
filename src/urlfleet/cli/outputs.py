"""Where ``fetch`` writes: checked before anything is written, the records file locked.

* ``-o``, ``--report`` and ``--save-dir`` may not name an input or each other (``-o urls.txt``
  with ``urls.txt`` as the input would empty the list before a URL of it is read), and
  ``--save-dir`` may not hold ``-o`` or ``--report``: that tree is the bodies'.
* ``--report`` is tried before the run: a report that cannot be written is said at once, not
  after an hour of fetching.
* ``-o`` is opened without truncating, then locked (``flock``, exclusive, non-blocking), and
  only then emptied: a second run on the same file stops at once and destroys nothing. The
  lock goes with the file's last descriptor, so it is released however the process ends.

Outputs that exist and are not regular files (``/dev/null``, ``/dev/stdout``, a FIFO) are left
out of these checks: nothing on disk can be lost through them.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import IO

from urlfleet.errors import InputError
from urlfleet.read.paths import STDIN, is_stream
from urlfleet.report.summary import temp_name

if sys.platform != "win32":
    import fcntl


def _regular_or_missing(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return True  # missing (or unreachable): opening it will say which


def same_path(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """One file or directory, by inode when both exist, else by resolved path."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return os.path.realpath(a) == os.path.realpath(b)


def _inside(path: Path, directory: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(directory))


def check_outputs(
    inputs: list[str], *, out: Path | None, report: Path | None, save_dir: Path | None
) -> None:
    """Raise InputError (one line, naming both) when an output would overwrite an input or
    another output. ``inputs`` are the sources as given and the files they expand to."""
    listed = [p for p in inputs if p != STDIN and not is_stream(p)]
    files: list[tuple[str, Path]] = []
    if out is not None and _regular_or_missing(out):
        files.append(("-o", out))
    if report is not None and _regular_or_missing(report):
        files.append(("--report", report))
    for option, path in files:
        for source in listed:
            if same_path(path, source):
                raise InputError(
                    f"{option} {path} is the input {source}: refusing to write over it"
                )
        if STDIN in inputs and _is_stdin(path):  # urlfleet fetch - -o list.txt < list.txt
            raise InputError(f"{option} {path} is the file on stdin: refusing to write over it")
    if len(files) == 2 and same_path(files[0][1], files[1][1]):
        raise InputError(f"-o and --report are the same file ({out}): give them different names")
    if save_dir is None:
        return
    for source in listed:
        if same_path(save_dir, source):
            raise InputError(f"--save-dir {save_dir} is the input {source}: choose another DIR")
    for option, path in files:
        if same_path(save_dir, path) or _inside(path, save_dir):
            raise InputError(
                f"--save-dir {save_dir} holds {option} {path}: bodies and records would mix; "
                f"put {option} outside it"
            )


def check_report_path(report: Path) -> None:
    """Raise InputError unless ``report`` can be written: a temp file is made beside it."""
    if report.is_dir():
        raise InputError(f"{report}: cannot write report (Is a directory)")
    if not _regular_or_missing(report):
        if not os.access(report, os.W_OK):
            raise InputError(f"{report}: cannot write report (Permission denied)")
        return
    probe = temp_name(report)
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"{report}: cannot write report ({exc.strerror or exc})") from exc


def open_locked(path: Path, *, append: bool) -> IO[str]:
    """``path`` opened to write records (emptied unless ``append``), locked for this run.

    InputError when it cannot be opened, or when another run holds the lock.
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    stream = os.fdopen(fd, "a" if append else "w", encoding="utf-8")
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            _lock(fd, path)
            if not append:
                os.ftruncate(fd, 0)  # only now that the file is ours
    except OSError as exc:
        stream.close()
        raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    except BaseException:
        stream.close()
        raise
    return stream


def _lock(fd: int, path: Path) -> None:
    if sys.platform == "win32":
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise InputError(
            f"{path}: another urlfleet run is writing to it (the file is locked); wait for "
            "that run to end or choose another -o"
        ) from None
    except OSError:
        pass  # a file system without locks (some network mounts): write unlocked, as before


def _is_stdin(path: Path) -> bool:
    try:
        given, stdin = os.stat(path), os.fstat(0)
    except OSError:
        return False
    return stat.S_ISREG(stdin.st_mode) and (given.st_dev, given.st_ino) == (
        stdin.st_dev,
        stdin.st_ino,
    )
