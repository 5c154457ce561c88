"""One copy of a shard: which copy may fetch, decided on the scheduler.

dask may run a task twice at once: a worker retired gracefully (scale-down, ``--lifetime``,
``retire_workers``) leaves the scheduler with its task still running, and the task starts
again elsewhere at once. So a shard claims itself on the scheduler before anything else; a
copy that finds the claim taken fetches nothing and returns ``DUPLICATE``. The client ends
such a shard when the claimant's ``ShardEnd`` comes, or once the claimant's connection to the
scheduler is gone (then as a loss).
"""

from __future__ import annotations

from typing import Any

CLOSED_RUNS_KEPT = 1000  # finished runs whose late shard copies the scheduler still refuses


class _Claims:
    """Which copy of each shard may fetch: the first to ask. Kept on the scheduler, which
    runs these functions one at a time on its event loop, so asking is taking. They are
    made here at run time and so sent by value: the scheduler needs no urlfleet.

    A claim names the worker's connection (client id) to the scheduler: when that goes, its
    process is gone or has stopped talking, and so has the shard.
    """

    def __init__(self) -> None:
        def claim(channel: str, shard: str, holder: str, dask_scheduler: Any) -> bool:
            store = dask_scheduler.__dict__.setdefault("urlfleet_claims", {})
            if channel in store.setdefault("closed runs", {}):
                return False  # a copy that starts after its run ended
            claims = store.setdefault(channel, {})
            if shard in claims:
                return False  # even from the same process: workers in one share a client
            claims[shard] = holder
            return True

        def claimant(channel: str, shard: str, dask_scheduler: Any) -> str:
            store = dask_scheduler.__dict__.get("urlfleet_claims", {})
            holder = store.get(channel, {}).get(shard)
            if holder is None:
                return "none"
            return "alive" if holder in dask_scheduler.clients else "gone"

        def close(channel: str, dask_scheduler: Any) -> None:
            store = dask_scheduler.__dict__.setdefault("urlfleet_claims", {})
            store.pop(channel, None)
            closed = store.setdefault("closed runs", {})
            closed[channel] = None
            while len(closed) > kept:
                del closed[next(iter(closed))]

        kept = CLOSED_RUNS_KEPT
        self.claim, self.claimant, self.close = claim, claimant, close


CLAIMS = _Claims()
