"""The dask.distributed engine behind the ``Cluster`` seam: shards as tasks on the workers,
their messages through a dask ``Queue`` on the scheduler, the stop flag a dask ``Event``,
claims on the scheduler (dask may run a task twice; see ``claims``).

``ClusterRun`` and ``fetch_distributed`` are the shard run on such a cluster. dask itself is
imported only when one is used (``client._dask``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from urlfleet.config import DEFAULT_SHARD_SIZE, FetchConfig
from urlfleet.distributed.claims import CLAIMS
from urlfleet.distributed.client import _check_workers, _dask, _slots, client_for
from urlfleet.distributed.cluster import ShardCall, ShardTask, StopFlag
from urlfleet.distributed.dispatch import ShardRun
from urlfleet.distributed.worker import _LiveShard, run_shard
from urlfleet.errors import ClusterError
from urlfleet.read.items import UrlItem
from urlfleet.record.records import Result

if TYPE_CHECKING:
    from distributed import Client

CLAIM_CHECK_S = 0.2  # how often the client asks whether a duplicate's claimant is still there
SLOTS_CHECK_S = 1.0  # how often the client asks the scheduler how many worker threads it has
LAST_WORDS_S = 5.0  # beyond its requests' timeout, how long a retiring worker waits for shards
LAST_WORDS_POLL_S = 0.05  # how often a retiring worker looks whether its shards have stopped


def fetch_distributed(
    urls: Iterable[UrlItem],
    config: FetchConfig | None = None,
    *,
    client: Client | str,
    shard_size: int = DEFAULT_SHARD_SIZE,
) -> Iterator[Result]:
    """Fetch ``urls`` on a dask cluster; yield each Result as it comes back.

    ``client`` is a ``distributed.Client``, or an address for ``client_for`` (the cluster
    or connection it opens is closed when the results end). Results carry their input
    ``index`` and ``meta`` (metas stay on this machine). Bodies stay on the workers unless
    ``config.keep_content``.

    >>> for result in fetch_distributed(urls, config, client="local:4"): write(result)
    """
    config = config or FetchConfig()
    if not isinstance(client, str):
        return ClusterRun(config, client=client, shard_size=shard_size).results(urls)
    return _on_new_client(urls, config, client, shard_size)


def _on_new_client(
    urls: Iterable[UrlItem], config: FetchConfig, address: str, shard_size: int
) -> Iterator[Result]:
    client, close = client_for(address)
    try:
        yield from ClusterRun(config, client=client, shard_size=shard_size).results(urls)
    finally:
        close()


class ClusterRun(ShardRun):
    """``Run`` on a dask cluster: iterate ``results()``; ``stop()``; ``phases`` after.

    >>> run = ClusterRun(config, client=client); for result in run.results(urls): ...
    """

    def __init__(
        self,
        config: FetchConfig,
        *,
        client: Client,
        shard_size: int = DEFAULT_SHARD_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            config, connect=lambda: DaskCluster(client, clock), shard_size=shard_size, clock=clock
        )
        self.client = client


@dataclass(slots=True)
class _DaskTask:
    """A shard's dask future, the shard's key in the run, and when its claimant was asked."""

    future: Any
    key: str
    checked_at: float = float("-inf")

    def done(self) -> bool:
        return bool(self.future.done())

    def error(self) -> BaseException | None:
        if self.future.status != "error":
            return None
        return cast(BaseException, self.future.exception())

    def release(self) -> None:
        self.future.release()


class DaskCluster:
    """One run's channels on a dask cluster (see ``Cluster``): a name of its own, its
    results Queue and stop Event on the scheduler, and the run's claims there."""

    def __init__(self, client: Client, clock: Callable[[], float] = time.monotonic) -> None:
        self._dask = dask = _dask()
        self._client: Any = client
        self._clock = clock
        self._channel = channel = f"urlfleet-{uuid.uuid4().hex[:12]}"
        self._inbox = dask.Queue(f"{channel}-results", client=client)
        self._stop_flag = dask.Event(f"{channel}-stop", client=client)
        self._slots_known, self._slots_checked = 1, float("-inf")

    def prepare(self) -> None:
        _check_workers(self._client)
        _register_last_words(self._client)

    def slots(self) -> int:
        # Workers come and go, but asking the scheduler on every poll is a message per 50 ms.
        now = self._clock()
        if now >= self._slots_checked + SLOTS_CHECK_S:
            self._slots_known, self._slots_checked = _slots(self._client), now
        return self._slots_known

    def submit(self, key: str, call: ShardCall) -> ShardTask:
        future = self._client.submit(
            fetch_shard, call, channel=self._channel, key=f"{self._channel}-{key}", pure=False
        )
        return _DaskTask(future, key)

    def messages(self) -> list[tuple[str, bytes]]:
        prefix = f"{self._channel}-"
        return [(key.removeprefix(prefix), blob) for key, blob in self._inbox.get(batch=True)]

    def stop(self) -> None:
        self._stop_flag.set()

    def cancel(self, tasks: list[ShardTask]) -> None:
        self._client.cancel([cast(_DaskTask, task).future for task in tasks])

    def failure(self, error: BaseException) -> BaseException | None:
        if isinstance(error, self._dask.KilledWorker):
            return None
        failed = ClusterError(
            f"a shard failed on the cluster: {type(error).__name__}: {error} (is "
            "the same urlfleet installed on every worker?)"
        )
        failed.__cause__ = error
        return failed

    def holder_gone(self, task: ShardTask) -> bool:
        # Asked at most every CLAIM_CHECK_S per shard: a message to the scheduler each time.
        shard = cast(_DaskTask, task)
        now = self._clock()
        if now < shard.checked_at + CLAIM_CHECK_S:
            return False
        shard.checked_at = now
        claimant = self._client.run_on_scheduler(CLAIMS.claimant, self._channel, shard.future.key)
        return bool(claimant != "alive")

    def close(self) -> None:
        self._inbox.close()
        self._stop_flag.clear()
        self._client.run_on_scheduler(CLAIMS.close, self._channel)


# -- on a worker ----------------------------------------------------------------------------


def fetch_shard(call: ShardCall, *, channel: str) -> int:
    """A shard's task on a dask worker: ``worker.run_shard`` through the run's ``channel``.

    Returns how many Results, or ``DUPLICATE`` at once when another copy of this shard has
    claimed it.
    """
    return run_shard(call, _DaskLink(channel))


class _DaskLink:
    """A shard's channel on a dask worker (see ``ShardLink``): the claim and the run's
    Queue and Event on the scheduler, opened only by the copy that claims the shard."""

    def __init__(self, channel: str) -> None:
        self._dask = dask = _dask()
        self._channel = channel
        self._client, worker = dask.get_client(), dask.get_worker()
        self._key: str = worker.get_current_task()
        self.worker: str = worker.address
        self._queue: Any = None
        self._stop: Any = None

    def claim(self) -> bool:
        client, channel = self._client, self._channel
        if not client.run_on_scheduler(CLAIMS.claim, channel, self._key, client.id):
            return False
        self._stop = self._dask.Event(f"{channel}-stop", client=client)
        self._queue = self._dask.Queue(f"{channel}-results", client=client)
        return True

    @property
    def stop_flag(self) -> StopFlag:
        return cast(StopFlag, self._stop)

    def send(self, batch: bytes) -> None:
        self._queue.put([self._key, batch])

    def close(self) -> None:
        if self._queue is not None:
            self._queue.close()  # each handle holds the queue on the scheduler


def _register_last_words(client: Any) -> None:
    # On every worker, now and later: when it closes, its shards stop and send what they have
    # before its connection to the scheduler goes. Registered again by each run, harmlessly.
    dask = _dask()
    plugin = type("UrlfleetLastWords", (dask.WorkerPlugin,), {"teardown": _last_words})
    client.register_plugin(plugin(), name="urlfleet-last-words")


async def _last_words(self: Any, worker: Any) -> None:
    # A worker plugin's teardown: awaited by Worker.close before its client closes. A plugin
    # replaced by the next run's is torn down too, on a worker that is not closing.
    if getattr(worker.status, "name", "") not in ("closing", "closing_gracefully"):
        return
    begun = time.monotonic()
    deadline = begun + LAST_WORDS_S
    while (shards := _LiveShard.on(worker.address)) and time.monotonic() < deadline:
        for shard in shards:  # again each time: a run that had not begun may begin meanwhile
            shard.stop()
            deadline = max(deadline, begun + shard.timeout + LAST_WORDS_S)
        await asyncio.sleep(LAST_WORDS_POLL_S)
