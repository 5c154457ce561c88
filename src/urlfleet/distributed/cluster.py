"""Where shards run, as the two sides of a run see it: the seam between the shard logic
(``plan``, ``dispatch``, ``worker``) and the engine that runs the shards.

Two engines sit behind it: a dask.distributed cluster (``daskcluster``) and worker
processes on this machine (``local``, loky, joblib's process backend). The dispatch talks
to a ``Cluster``, one per run; a shard on a worker talks back through a ``ShardLink``.
Nothing here imports an engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http.cookiejar import Cookie
from typing import Any, Protocol

from urlfleet.politeness import HostMemory


@dataclass(frozen=True, slots=True)
class ShardCall:
    """What a shard's task is given: its URLs, the run's pickled FetchConfig, the seconds
    before its first request, its host groups, and its hosts' states and cookies to start
    from."""

    urls: list[Any]
    config_blob: bytes
    wait: float = 0.0
    groups: frozenset[int] = frozenset()
    memories: dict[str, HostMemory] = field(default_factory=dict)
    cookies: list[Cookie] = field(default_factory=list)


class ShardTask(Protocol):
    """A shard submitted to a cluster, as its engine keeps it."""

    @property
    def key(self) -> str: ...  # the shard's name: its messages carry it

    def done(self) -> bool: ...

    def error(self) -> BaseException | None:
        """Once done: what the task raised; None if it returned."""

    def release(self) -> None:
        """Forget the task (a dask future held would be computed again if its worker died)."""


class Cluster(Protocol):
    """The dispatch's side of one run: shards out, messages in, a stop flag for all."""

    def prepare(self) -> None:
        """Before the first shard, in the dispatching thread: checks, hooks on workers."""

    def slots(self) -> int:
        """How many shards may run at once now."""

    def submit(self, key: str, call: ShardCall) -> ShardTask:
        """Start a shard: ``worker.run_shard(call, link)`` with this run's link."""

    def messages(self) -> list[tuple[str, bytes]]:
        """What shards sent since the last call, as (shard key, pickled batch); no wait."""

    def stop(self) -> None:
        """Raise the run's stop flag: running shards finish their requests in flight."""

    def cancel(self, tasks: list[ShardTask]) -> None:
        """Tasks the run no longer waits for (they hear the stop flag)."""

    def failure(self, error: BaseException) -> BaseException | None:
        """What to raise for a shard that raised ``error``; None when it means the shard's
        worker died (its URLs not sent go again)."""

    def holder_gone(self, task: ShardTask) -> bool:
        """For a task done with no ShardEnd received (a worker died, or a copy of a shard
        found it claimed): whether whoever ran the shard is gone, so it sends nothing more.
        May answer False until it knows."""

    def close(self) -> None:
        """The run is over: let go of its channels (the engine itself stays open)."""


class StopFlag(Protocol):
    """A run's stop flag as a shard sees it (a dask Event, a Manager's Event proxy)."""

    def wait(self, timeout: float | None = None) -> bool: ...
    def is_set(self) -> bool: ...


class ShardLink(Protocol):
    """A shard's side of its run, on the worker: ``worker.run_shard`` talks through it."""

    @property
    def worker(self) -> str: ...  # the process it runs in, for a retiring worker's last words

    def claim(self) -> bool:
        """Whether this copy of the shard may fetch (where an engine may run a task twice),
        and, if so, open the channels below."""

    @property
    def stop_flag(self) -> StopFlag: ...

    def send(self, batch: bytes) -> None:
        """One pickled batch of messages to the client, in order."""

    def close(self) -> None:
        """Every batch has been sent."""
