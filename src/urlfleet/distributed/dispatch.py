"""The client side of a shard run, whatever engine runs the shards (a ``Cluster``: dask, or
processes on this machine): shards started on free workers, Results taken as they come back,
ended shards' groups let go again.

A worker that dies takes with it only what it had not sent: its requests in flight and the
URLs its shard had not started. When its shard ends (dask runs it again elsewhere, and the
rerun only says so), the client puts those URLs back in their groups' queues, to start once
the lost requests must have ended. A URL lost with ``MAX_LOSSES`` workers is given up.

What one machine keeps per host holds across shards too:

- **Redirects.** A hop to a host outside the shard's groups comes back as a ``Hop`` (the job
  as it stands: redirect count, attempts, time, and the next request as requests prepared
  it, so an Authorization that requests dropped stays dropped), which queues it first in the
  target's group: it goes out in a later shard of that group, under that host's limits, and
  its record is the one the URL would have had on one machine.
- **Host state.** The client keeps the latest ``Politeness.memory`` per host that shards
  sent and ships it with the next shard of its group, whose run starts from it. When a
  group's next shard may start, and what it inherits, is the politeness rules' decision
  (``urlfleet.politeness.shards``): the client only asks.
- **Cookies.** Likewise the cookies each shard's jar ended with, given to the next shards
  of their hosts (``shardcookies``); ``config.cookie_jar`` is read and written here, on the
  client, and the workers never see the file.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import pickle
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from http.cookiejar import Cookie
from typing import Any

from urlfleet.config import DEFAULT_SHARD_SIZE, FetchConfig
from urlfleet.distributed.cluster import Cluster, ShardCall, ShardTask
from urlfleet.distributed.plan import Item, Shard, ShardPlan, _host_of, key_group
from urlfleet.distributed.shardcookies import ShardCookies
from urlfleet.distributed.worker import ShardEnd
from urlfleet.errors import ClusterError, SaveError, UrlfleetError
from urlfleet.fetching.adapter import threads_for
from urlfleet.fetching.cookies import load_jar, save_jar
from urlfleet.politeness.shards import HostMemories
from urlfleet.read.items import UrlItem, UrlRequest
from urlfleet.record.records import Result
from urlfleet.report.tally import Phase, Tally
from urlfleet.run.runner import Hop
from urlfleet.urls import redact_url

# A URL whose shard was lost with this many workers is recorded as failed, not tried again:
# dask's own limit (distributed.scheduler.allowed-failures) for a task that kills workers.
MAX_LOSSES = 3
POLL_S = 0.05  # how often the client looks for Results and ended shards when it saw none


class ShardRun:
    """``Run`` in shards on the cluster ``connect()`` opens for it (one per ``results()``):
    iterate ``results()``; ``stop()``; ``phases`` after.

    >>> run = ShardRun(config, connect=processes.connect); for result in run.results(urls): ...
    """

    def __init__(
        self,
        config: FetchConfig,
        *,
        connect: Callable[[], Cluster],
        shard_size: int = DEFAULT_SHARD_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        self.config = config
        self.shard_size = shard_size
        self._connect = connect
        self.phases: list[Phase] = []
        self._clock = clock
        self._dispatch: _Dispatch | None = None
        self._stopped = False
        # Read now, as Run reads it: a bad file is an InputError before anything is fetched.
        self.cookies = ShardCookies(load_jar(config.cookie_jar).snapshot())

    def stop(self) -> None:
        """Start no more shards; running ones fetch only what they have in flight, then end."""
        self._stopped = True
        if self._dispatch is not None:
            self._dispatch.stop()

    def paused_hosts(self) -> int:
        return 0  # pauses happen on the workers, which do not report them as they go

    def paused_seconds(self) -> dict[str, float]:
        return {}

    def save_cookies(self) -> None:
        """Write the cookies shards ended with to ``config.cookie_jar`` (if set), as now."""
        if self.config.cookie_jar is not None:
            save_jar(self.cookies, self.config.cookie_jar)

    def results(self, urls: Iterable[UrlItem]) -> Iterator[Result]:
        """Fetch every URL on the cluster, yielding each Result as it comes back."""
        cluster = self._connect()
        slots = cluster.slots()
        plan = ShardPlan(
            urls,
            shard_size=self.shard_size,
            window=max(self.config.window, 2 * self.shard_size * slots),
            clock=self._clock,
        )
        self._dispatch = dispatch = _Dispatch(plan, self.config, cluster, self._clock,
                                              cookies=self.cookies)  # fmt: skip
        if self._stopped:  # told before it began (a Ctrl-C while the cluster was starting)
            dispatch.stop()
        started, tally, cpu_at_start = self._clock(), Tally(), time.process_time()
        threads = slots * threads_for(self.config.jobs)
        try:
            for result in dispatch.results():
                tally.add(result)
                yield result
        finally:
            self.save_cookies()  # after failures and interrupts too
            cpu_s = time.process_time() - cpu_at_start  # this process: dispatch and records
            self.phases.append(Phase("threaded", threads, self._clock() - started, tally,
                                     cpu_s=cpu_s, worker_cpu_s=dispatch.worker_cpu_s))  # fmt: skip


class _Dispatch:
    """The client side of one run. A thread of its own starts shards on free workers, takes
    the Results workers send back and ends shards, so a slow consumer never idles the
    cluster; the caller's thread only yields Results.

    A finished shard's future is released at once: while the client holds one, dask computes
    it again if its worker dies. The claim keeps such a copy from fetching anything, and
    releasing the future keeps it from even starting.
    """

    def __init__(
        self,
        plan: ShardPlan,
        config: FetchConfig,
        cluster: Cluster,
        clock: Callable[[], float],
        *,
        cookies: ShardCookies,
    ) -> None:
        self._plan = plan
        self._config = config
        # Pickled here and unpickled inside the task: a caller's function (retry_if) that a
        # worker cannot import is then the task's error, not a broken link to the worker.
        # cloudpickle comes with joblib (and dask). The cookie jar file is the client's own.
        shipped = replace(config, cookie_jar=None)
        self._config_blob: bytes = importlib.import_module("cloudpickle").dumps(shipped)
        self._cluster = cluster
        self._clock = clock
        self._names = (f"shard-{n}" for n in itertools.count())
        self._running: dict[str, _Task] = {}  # by key
        self._losses = _Losses(config.timeout)
        self._memories = HostMemories(config, group=key_group, clock=clock)
        self.cookies = cookies
        self._handed_at: dict[int, float] = {}  # input index of a Hop: when it came back
        self._stopping = threading.Event()
        self._halted = threading.Event()
        self._out: queue.SimpleQueue[list[Result] | BaseException | None] = queue.SimpleQueue()
        # Results in ``_out`` the caller has not taken yet. Past ``plan.window`` of them no
        # new shard starts, so a slow consumer holds back the cluster, not fills memory: the
        # client then holds at most that, the running shards' URLs and the plan's window.
        self._held = 0
        self._held_lock = threading.Lock()
        self.worker_cpu_s = 0.0  # the workers' CPU seconds, from the shards ended so far

    def stop(self) -> None:
        self._stopping.set()
        self._cluster.stop()

    def results(self) -> Iterator[Result]:
        pump = threading.Thread(target=self._pump, daemon=True, name="urlfleet-dispatch")
        seen = bytearray()  # by input index: a Result sent twice (a lost batch resent) counts once
        pump.start()
        try:
            while (batch := self._out.get()) is not None:
                if isinstance(batch, BaseException):
                    raise batch
                with self._held_lock:
                    self._held -= len(batch)
                for result in batch:
                    if result.index >= len(seen):
                        seen.extend(bytes(max(result.index + 1, 2 * len(seen)) - len(seen)))
                    if not seen[result.index]:
                        seen[result.index] = 1
                        yield result
        finally:
            self._halt()  # the run is over, failed, or the caller stopped early
            pump.join()
            with contextlib.suppress(Exception):  # the scheduler may be gone
                self._cluster.close()

    def _hand_over(self, batch: list[Result]) -> None:
        with self._held_lock:
            self._held += len(batch)
        self._out.put(batch)

    def _backlogged(self) -> bool:
        with self._held_lock:
            return self._held >= self._plan.window

    def _halt(self) -> None:
        self._halted.set()
        self.stop()

    def _pump(self) -> None:
        try:
            self._cluster.prepare()
            while not self._halted.is_set():
                self._submit()
                # With none running, only a caller that is behind keeps the run going: more
                # comes once it catches up.
                if not self._running and (self._stopping.is_set() or not self._backlogged()):
                    break
                if not self._running or not self._collect():
                    time.sleep(POLL_S)
        except (UrlfleetError, KeyboardInterrupt) as exc:  # for the caller's thread to raise
            self._out.put(exc)
        except Exception as exc:  # a lost scheduler, mostly: one line for the user, not a trace
            error = ClusterError(f"lost touch with the cluster: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            self._out.put(error)
        finally:
            if self._running:  # halted: they hear the stop flag and end after what is in flight
                self._cluster.cancel([task.task for task in self._running.values()])
            self._out.put(None)

    def _collect(self) -> bool:
        """Hand over the Results that came and end the shards that ended; whether there was
        any of either."""
        done = {key for key, task in self._running.items() if task.task.done()}
        # A shard's messages were all put before it ended (or before its claimant's
        # connection went): drained after that was seen, nothing of it is to come.
        arrived = self._drain()
        if arrived:
            self._hand_over(arrived)
        ended = [t for key, t in self._running.items() if self._over(t, key in done)]
        for task in ended:
            self._end(task)
        return bool(arrived or ended)

    def _over(self, task: _Task, done: bool) -> bool:
        """Whether a shard has ended: its ShardEnd came, or its task is done (an error, or a
        copy that found the claim taken) and whoever claimed it is gone, as of a look taken
        before the last drain."""
        if task.end is not None or task.claimant_gone:
            return True
        if not done:
            return False
        error = task.task.error()
        if error is not None and self._cluster.failure(error) is not None:
            return True  # _end raises it
        # Gone now, it sends nothing more: the next drain has the last of it.
        task.claimant_gone = self._cluster.holder_gone(task.task)
        return False

    def _submit(self) -> None:
        if self._stopping.is_set() or self._backlogged():
            return
        for share in range(self._cluster.slots() - len(self._running), 0, -1):
            shard = self._plan.next_shard(share)
            if shard is None:
                return
            key = next(self._names)
            urls = [self._resumed(i, url) for i, url in zip(shard.indexes, shard.urls, strict=True)]
            memories = self._memories.inherited(shard.groups)
            cookies = self.cookies.for_hosts(shard.hosts())
            call = ShardCall(urls, self._config_blob, shard.wait, shard.groups, memories, cookies)
            task = self._cluster.submit(key, call)
            self._running[key] = _Task(task, shard, cookies)

    def _resumed(self, index: int, url: Any) -> Any:
        # A Hop's time so far goes on while it waits here for its group's turn.
        since = self._handed_at.pop(index, None)
        if since is None or not isinstance(url, Hop):
            return url
        return replace(url, elapsed_s=url.elapsed_s + max(0.0, self._clock() - since))

    def _drain(self) -> list[Result]:
        arrived: list[Result] = []
        for key, payload in self._cluster.messages():
            task = self._running.get(key)
            if task is None:
                continue  # from a shard already ended and sent again: it counts there
            for message in pickle.loads(payload):
                result = self._take(task, message)
                if result is not None:
                    arrived.append(result)
        return arrived

    def _take(self, task: _Task, message: Result | Hop | ShardEnd) -> Result | None:
        # One message of a running shard; a Result comes back with its input index and meta.
        if isinstance(message, ShardEnd):
            task.end = message
            self.worker_cpu_s += message.cpu_s
            self._memories.update(message.memories)
            self.cookies.update(task.cookies, message.cookies)
            return None
        task.sent.add(message.index)
        shard = task.shard
        if isinstance(message, Hop):
            self._hand_back(shard.items([message.index])[0], message)
            return None
        self._losses.saw(message.elapsed_s)
        return replace(message, index=shard.indexes[message.index], meta=shard.metas[message.index])

    def _hand_back(self, item: Item, hop: Hop) -> None:
        # The redirect goes on in a shard of its target's group, first in that group's queue.
        if self._stopping.is_set():
            return  # as on one machine: a hop waiting when the run stops is not fetched
        index, _, meta = item
        self._handed_at[index] = self._clock()
        self._plan.put_first((index, replace(hop, index=-1), meta))

    def _end(self, task: _Task) -> None:
        del self._running[task.task.key]
        shard = task.shard
        self._raise_failure(task.task)
        task.task.release()
        unsent = shard.items(p for p in range(len(shard.urls)) if p not in task.sent)
        if not unsent or self._stopping.is_set():
            self._release(shard)
            return
        if task.end is not None:
            # Stopped early (its worker is retiring): nothing of it is still in flight.
            self._release(shard, unsent)
            return
        # Lost with a worker (or not run at all): its requests in flight may still be running
        # on their servers; the URLs go again once they must have ended.
        again, given_up = self._losses.count(unsent)
        self._release(shard, again, in_flight_for=self._losses.in_flight_for())
        if given_up:
            self._hand_over(_lost(given_up, f"worker died while fetching ({MAX_LOSSES} times)"))

    def _raise_failure(self, task: ShardTask) -> None:
        # A shard that failed on its worker, unless the worker died (then its URLs go again).
        error = task.error()
        if isinstance(error, SaveError):
            raise error  # a full disk on the worker: every later body would fail too
        failure = None if error is None else self._cluster.failure(error)
        if failure is not None:
            raise failure

    def _release(
        self, shard: Shard, unsent: list[Item] | None = None, *, in_flight_for: float = 0.0
    ) -> None:
        # What its hosts' memories and limits say now: a Crawl-delay learned in this shard too.
        hold = self._memories.waits(shard.groups, shard.hosts(), in_flight_for=in_flight_for)
        self._plan.release(shard, unsent=unsent or (), hold=hold)


class _Losses:
    """URLs lost with workers: how many times each was, and how long a lost request may
    still be running on its server (the longest request seen, else the timeout)."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._by_index: dict[int, int] = {}  # input index: shards it was lost with
        self._slowest = 0.0

    def saw(self, elapsed_s: float) -> None:
        self._slowest = max(self._slowest, min(elapsed_s, self._timeout))

    def in_flight_for(self) -> float:
        return self._slowest or self._timeout

    def count(self, items: list[Item]) -> tuple[list[Item], list[Item]]:
        """One more loss for each of ``items``: those to send again, those given up."""
        again: list[Item] = []
        given_up: list[Item] = []
        for item in items:
            self._by_index[item[0]] = losses = self._by_index.get(item[0], 0) + 1
            (given_up if losses >= MAX_LOSSES else again).append(item)
        return again, given_up


@dataclass(slots=True)
class _Task:
    """A running shard: its task, the cookies it was given, the shard positions whose
    Results (or Hops) came back, its ShardEnd once it came, and whether whoever ran it is
    known to be gone."""

    task: ShardTask
    shard: Shard
    cookies: list[Cookie]
    sent: set[int] = field(default_factory=set)
    end: ShardEnd | None = None
    claimant_gone: bool = False


def _lost(items: list[Item], error: str) -> list[Result]:
    return [
        Result.failed(
            redact_url(url) if isinstance(url, str) else repr(url),
            error,
            host=_host_of(url),
            meta=meta,
            index=index,
        )  # fmt: skip
        for index, url, meta in ((i, _input(u), m) for i, u, m in items)
    ]


def _input(url: Any) -> Any:
    # The URL a record is about: a Hop's is the one it started from.
    return url.url if isinstance(url, (Hop, UrlRequest)) else url
