"""The progress bar's total: counted only for a bar that shows, and not before the run starts."""

from __future__ import annotations

import threading

from urlfleet.record.records import Result
from urlfleet.run.progress import Progress


def result(ok: bool = True) -> Result:
    return Result(url="http://a.test/", ok=ok, status=200 if ok else 500, error=None,
                  attempts=1, elapsed_s=0.01, bytes=0, host="a.test")  # fmt: skip


def test_a_bar_that_does_not_show_never_counts_the_list() -> None:
    def count() -> int:
        raise AssertionError("counted for a bar that does not show")

    bar = Progress(count, enabled=False)
    bar.advance(result())
    bar.close()
    assert (bar.ok, bar.failed) == (1, 0)


def test_the_total_is_counted_in_a_thread_and_taken_once_known() -> None:
    release, called = threading.Event(), threading.Event()

    def count() -> int:
        called.set()
        release.wait(10)  # as a long list would: the bar is made without waiting for it
        return 10

    bar = Progress(count, enabled=True)
    assert called.wait(10)
    bar.advance(result())
    assert bar._bar.total is None  # not known yet: the bar counts without a total
    release.set()
    for thread in threading.enumerate():
        if thread.name == "urlfleet-count":
            thread.join(10)
    bar.advance(result(ok=False), dropped=2)  # two listed lines were not URLs to fetch
    assert bar._bar.total == 8 and bar._bar.n == 2
    bar.advance(result(), dropped=3)
    assert bar._bar.total == 7
    bar.close()
