"""The command line's start-up: its imports, with the cyclic garbage collector held off.

Importing what a run needs (urlfleet's modules, requests, urllib3, joblib, tenacity, tqdm)
makes many objects that live as long as the process, and the collector, run every few
hundred allocations, walks them again and again while they are being made: most of all when
there is no bytecode to load and every module is compiled. Held off meanwhile, and what
survives frozen (``gc.freeze``: left out of every later collection), they cost nothing more;
what a run makes is collected as usual. (Merely held off, they would all be walked by the
first full collection after.) The library (``import urlfleet``)
leaves the collector alone: the process is its caller's; and ``thaw`` gives an in-process
caller of ``urlfleet.cli.main`` its collector back as it was.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_froze = False  # whether collector_held froze objects that thaw must give back


@contextmanager
def collector_held() -> Iterator[None]:
    """Imports inside go uncollected; what they made is frozen at the end (unless the
    process froze objects of its own: thawing ours would thaw those too)."""
    global _froze
    if not gc.isenabled():  # held already (an enclosing start-up), or by the caller's choice
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if _froze or gc.get_freeze_count() == 0:
            gc.freeze()
            _froze = True
        gc.enable()


def thaw() -> None:
    """Undo ``collector_held``'s freeze, if it froze: those objects are collected again."""
    global _froze
    if _froze:
        gc.unfreeze()
        _froze = False
