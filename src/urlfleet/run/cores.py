"""How many processes a run uses (``--processes N|auto``, ``processes=``), and why.

One process is held to one core by the GIL once its list is CPU-bound; N processes, each
with its own hosts and threads, use N. Starting them costs about a second (each imports
the fetching modules), which a short list does not win back: ``auto`` takes every core this
process may use only for a list known to hold ``AUTO_MIN_URLS`` URLs or more.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

AUTO = "auto"
# Measured on 2 cores against the loopback server (benchmarks/README.md, "Processes"): 2
# processes lost to 1 on 2,000 URLs (2.69 s against 2.15 s: their start-up is ~0.6 s of a
# 2 s run) and won on 10,000 (9.2 to 10.8 s against 12.7 s, HTTPS over 1,000 names).
AUTO_MIN_URLS = 10_000


@dataclass(frozen=True, slots=True)
class ProcessChoice:
    """How many processes, and, for ``auto``, the reason in words (one line)."""

    count: int
    reason: str | None = None


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def parse_processes(value: int | str) -> int | str:
    """``value`` as a process count (1 up to the usable cores) or ``"auto"``; a ValueError
    says what is wrong."""
    cores = usable_cores()
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise TypeError  # 2.0 or True is not a count of processes
        count = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"processes must be a whole number or 'auto', got {value!r}") from None
    if not 1 <= count <= cores:
        raise ValueError(
            f"processes must be from 1 to {cores} (the cores this process may use) or "
            f"'auto', got {count}"
        )
    return count


def choose_processes(
    asked: int | str, *, size: int | None, single_only: str | None = None
) -> ProcessChoice:
    """The processes for a run that asked for ``asked`` (checked by ``parse_processes``),
    over a list of ``size`` URLs if known. ``single_only``: why this run can use only one
    (an option given), which ``auto`` then says."""
    asked = parse_processes(asked)
    if asked != AUTO:
        return ProcessChoice(int(asked))
    cores = usable_cores()
    if cores == 1:
        return ProcessChoice(1, "--processes auto: 1 process (this process may use 1 core)")
    if single_only is not None:
        return ProcessChoice(1, f"--processes auto: 1 process ({single_only})")
    if size is None:
        return ProcessChoice(1, "--processes auto: 1 process (the list's size is not known "
                             "before it is read: give --processes N)")  # fmt: skip
    if size < AUTO_MIN_URLS:
        return ProcessChoice(1, f"--processes auto: 1 process ({size} URLs at most; starting "
                             f"more pays from {AUTO_MIN_URLS})")  # fmt: skip
    return ProcessChoice(cores, f"--processes auto: {cores} processes, one per core this "
                         f"process may use, for up to {size} URLs")  # fmt: skip
