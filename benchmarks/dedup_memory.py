"""Bytes per URL of the reader's duplicate check and of --resume's done set, at 1,000,000 URLs.

    python benchmarks/dedup_memory.py [N]

tracemalloc counts every allocation the structure makes: ``held`` is what it keeps once
built, ``peak`` the most it held at any moment while being built (a table doubling, runs
being merged); the time is a build without tracemalloc. The set of 8-byte digests that
the reader used before is measured beside it.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from urlfleet.read.dedup import DigestSet
from urlfleet.read.resume import DoneUrls  # noqa: E402
from urlfleet.urls import url_digest  # noqa: E402


def measure(name: str, build: Callable[[], object], n: int) -> None:
    started = time.perf_counter()
    build()  # timed untraced: tracemalloc slows every allocation
    seconds = time.perf_counter() - started
    tracemalloc.start()
    kept = build()
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{name:32} held {held / n:5.1f} B/URL   peak {peak / n:5.1f} B/URL   {seconds:5.2f} s")
    del kept


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    urls = (f"http://h{i % 100_000}.test/page/{i}" for i in range(n))
    digests = [url_digest(url) for url in urls]  # made before measuring: input, not structure
    print(f"{n:,} distinct URLs, {sys.version.split()[0]}")

    def digest_set() -> object:
        seen = DigestSet()
        for digest in digests:
            seen.add(digest)
        return seen

    def done_urls() -> object:
        return DoneUrls(iter(digests))

    def old_set() -> object:
        seen: set[bytes] = set()
        for digest in digests:
            seen.add(digest.to_bytes(8, "big"))
        return seen

    measure("reader: DigestSet", digest_set, n)
    measure("--resume: DoneUrls (sorted)", done_urls, n)
    measure("before: set of 8-byte digests", old_set, n)


if __name__ == "__main__":
    main()
