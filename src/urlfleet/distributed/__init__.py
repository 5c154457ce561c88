"""Fetching on a dask.distributed cluster: shards of URLs, each host in one shard at a time.

Every host belongs to one of ``HOST_GROUPS`` groups by a stable hash of its ``host_key`` (the
same group in every process and every run, unlike ``hash()``). The client keeps one queue per
group and cuts the list into shards of at most ``shard_size`` URLs, each taken from groups that
no running shard holds. A worker fetches a shard with the usual threaded run and its per-host
limits, so no host ever has two shards running anywhere: ``per_host`` and ``delay`` hold for
the whole cluster without a shared store. Many small shards keep every worker busy: while a
hot host's group runs shard after shard, the other groups go to the other workers.

A group's next shard starts one start gap (``delay``, jitter and margin) after the client saw
its last one end, and that shard's requests had all started before it ended: so the gap holds
across shards with no clocks compared between machines.

Workers send Results back as they come, in small batches through a dask ``Queue`` on the
scheduler, so the client (the one writer of records) sees each URL soon after it is fetched.
A worker that dies takes with it only what it had not sent: its requests in flight and the
URLs its shard had not started. When its shard ends (dask runs it again elsewhere, and the
rerun only says so), the client puts those URLs back in their groups' queues, to start once
the lost requests must have ended. A URL lost with ``MAX_LOSSES`` workers is given up.

What one machine keeps per host holds across shards too:

- **Redirects.** A worker follows a redirect only to a host of its shard's groups. A hop to
  any other host goes back to the client as a ``Hop`` (the job as it stands: redirect count,
  attempts, time, and the next request as requests prepared it, so an Authorization that
  requests dropped stays dropped), which queues it first in the target's group: it goes out
  in a later shard of that group, under that host's limits, and its record is the one the
  URL would have had on one machine.
- **Host state.** A shard ends with a ``ShardEnd`` carrying ``Politeness.memory`` of every
  host it knew (pause, gap, pace, failure counts, cut-off, robots.txt); the client keeps
  the latest per host and ships it with the next shard of its group, whose run starts from
  it. A remembered pause or gap also holds back the group's next shard.
- **One copy of a shard.** dask may run a task twice at once: a worker retired gracefully
  (scale-down, ``--lifetime``, ``retire_workers``) leaves the scheduler with its task still
  running, and the task starts again elsewhere at once. So a shard claims itself on the
  scheduler before anything else; a copy that finds the claim taken fetches nothing and
  returns ``DUPLICATE``. The client ends such a shard when the claimant's ``ShardEnd``
  comes, or once the claimant's connection to the scheduler is gone (then as a loss). A
  retiring worker waits, before it closes, for its shards to stop and send what they have:
  their requests in flight finish, and the URLs not started go back to the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import itertools
import pickle
import queue
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

from urlfleet._version import __version__
from urlfleet.config import DEFAULT_SHARD_SIZE, FetchConfig
from urlfleet.errors import ClusterError, InputError, SaveError, UrlfleetError
from urlfleet.fetching.adapter import threads_for
from urlfleet.politeness import HostMemory, Politeness, host_key
from urlfleet.read.items import UrlItem, UrlRequest, split_item
from urlfleet.read.sitemaps import SitemapItem
from urlfleet.record.records import Result
from urlfleet.report.summary import Phase, Tally
from urlfleet.run.runner import Hop, Run
from urlfleet.urls import redact_url

if TYPE_CHECKING:
    from distributed import Client

# Groups bound the client's queues (one per group, however many hosts); hosts that share a
# group share its turn, so more groups mean fewer hosts waiting on a busy neighbour.
HOST_GROUPS = 4096
# A URL whose shard was lost with this many workers is recorded as failed, not tried again:
# dask's own limit (distributed.scheduler.allowed-failures) for a task that kills workers.
MAX_LOSSES = 3
POLL_S = 0.05  # how often the client looks for Results and ended shards when it saw none
SEND_EVERY_S = 0.1  # how long a worker gathers Results before it sends them on
STOP_POLL_S = 0.5  # how long a worker's stop watcher waits on the scheduler per call
DUPLICATE = -1  # what a copy of a shard returns when another copy has claimed it
CLAIM_CHECK_S = 0.2  # how often the client asks whether a duplicate's claimant is still there
MAX_MEMORIES = 100_000  # host states the client keeps between shards (the oldest go first)
LAST_WORDS_S = 5.0  # beyond its requests' timeout, how long a retiring worker waits for shards
CLOSED_RUNS_KEPT = 1000  # finished runs whose late shard copies the scheduler still refuses
DASK_HINT = "--dask needs dask.distributed: install urlfleet[dask]"
NO_PROFILER = {"distributed.worker.profile.enabled": False}  # see client_for

Item = tuple[int, Any, Any]  # (input position, url or Hop, meta)
_NO_MORE = object()  # the list's end: a None in it is an item (an invalid URL), not the end


@dataclass(frozen=True, slots=True)
class ShardEnd:
    """A shard's last message: every host it knew, with what the host's next shard must
    respect (``Politeness.memory``; None: nothing, so forget what was kept)."""

    memories: dict[str, HostMemory | None]


def client_for(address: str) -> tuple[Client, Callable[[], None]]:
    """A dask Client for ``address`` and the function that closes what was opened for it.

    ``tcp://HOST:PORT`` (or any dask address with a scheme) connects to a running scheduler;
    ``local:N`` starts N worker processes on this machine, one thread each (a shard brings
    its own fetch threads).

    >>> client, close = client_for("local:2"); ...; close()
    """
    dask = _dask()
    if address.startswith("local:"):
        # No dashboard; the scheduler's HTTP routes (health, metrics) still listen, and on
        # port 8787 unless told otherwise: taken by any other cluster on the machine, it
        # makes dask warn, which is an error where warnings are (our tests). No profiler:
        # its sys._current_frames() every 10 ms can deadlock a busy process on Python 3.11
        # (CPython gh-106883, dask/distributed#8616): seen here as a worker frozen mid-shard.
        with importlib.import_module("dask").config.set(NO_PROFILER):
            # The config around this call holds for the first processes only: a worker its
            # nanny restarts (after a crash, a kill) gets the nanny's, so it is given there.
            cluster = dask.LocalCluster(
                n_workers=_local_workers(address), threads_per_worker=1, processes=True,
                dashboard_address=None, host="127.0.0.1",
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                config=_without_profiler(),
            )  # fmt: skip
        client = dask.Client(cluster)
        # Ctrl-C reaches every process of the terminal's group: the workers must leave it to
        # the client, which stops the run and lets the requests in flight finish.
        plugin = type("IgnoreCtrlC", (dask.WorkerPlugin,), {"setup": _ignore_ctrl_c})
        client.register_plugin(plugin(), name="urlfleet-ignore-ctrl-c")

        def close() -> None:
            client.close()
            cluster.close()

        return client, close
    if "://" not in address:
        raise InputError(f"--dask: expected tcp://HOST:PORT or local:N, got {address!r}")
    try:
        client = dask.Client(address)
    except OSError as exc:
        raise InputError(f"--dask: no dask scheduler at {address} ({exc})") from exc
    return client, client.close


def _without_profiler() -> dict[str, Any]:
    config = importlib.import_module("dask").config
    return dict(config.merge(config.config, {"distributed": {"worker": {"profile": {
        "enabled": False}}}}))  # fmt: skip


def _ignore_ctrl_c(self: Any, worker: Any) -> None:
    # A worker plugin's setup: it runs in the worker's event loop, its process's main thread.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


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


class ClusterRun:
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
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        self.config = config
        self.client = client
        self.shard_size = shard_size
        self.phases: list[Phase] = []
        self._clock = clock
        self._dispatch: _Dispatch | None = None
        self._stopped = False

    def stop(self) -> None:
        """Start no more shards; running ones fetch only what they have in flight, then end."""
        self._stopped = True
        if self._dispatch is not None:
            self._dispatch.stop()

    def paused_hosts(self) -> int:
        return 0  # pauses happen on the workers, which do not report them as they go

    def paused_seconds(self) -> dict[str, float]:
        return {}

    def results(self, urls: Iterable[UrlItem]) -> Iterator[Result]:
        """Fetch every URL on the cluster, yielding each Result as it comes back."""
        slots = _slots(self.client)
        plan = ShardPlan(
            urls,
            shard_size=self.shard_size,
            window=max(self.config.window, 2 * self.shard_size * slots),
            gap=Politeness(self.config).max_gap,
            clock=self._clock,
        )
        self._dispatch = dispatch = _Dispatch(plan, self.config, self.client, self._clock)
        if self._stopped:  # told before it began (a Ctrl-C while the cluster was starting)
            dispatch.stop()
        started, tally = self._clock(), Tally()
        threads = slots * threads_for(self.config.jobs)
        try:
            for result in dispatch.results():
                tally.add(result)
                yield result
        finally:
            self.phases.append(Phase("threaded", threads, self._clock() - started, tally))


def host_group(url: Any, groups: int = HOST_GROUPS) -> int:
    """The group of a URL's host: a stable hash of ``host_key``, the same in every process.
    A Hop is in its target's group."""
    return key_group(_host_of(url), groups)


def key_group(key: str, groups: int = HOST_GROUPS) -> int:
    """The group of a host by its ``host_key``."""
    data = key.encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big") % groups


def _host_of(url: Any) -> str:
    if isinstance(url, Hop):
        url = url.target
    elif isinstance(url, UrlRequest):
        url = url.url
    try:
        return host_key(url) if isinstance(url, str) else ""
    except ValueError:  # a bad port: the shard reports such a URL as invalid
        return ""


@dataclass(frozen=True, slots=True)
class Shard:
    """URLs for one task, what the client keeps back (positions, metas, groups), and timing:
    ``wait`` before its first request, ``gap`` the longest start gap of its hosts."""

    urls: list[Any]
    indexes: list[int]
    metas: list[Any]
    groups: frozenset[int]
    wait: float = 0.0
    gap: float = 0.0

    def items(self, positions: Iterable[int]) -> list[Item]:
        return [(self.indexes[p], self.urls[p], self.metas[p]) for p in positions]


class ShardPlan:
    """The list in per-group queues, read ``window`` URLs ahead; ``next_shard`` takes only
    from groups no shard holds.

    >>> shard = plan.next_shard(share=2); ...; plan.release(shard)
    """

    def __init__(
        self,
        urls: Iterable[UrlItem],
        *,
        shard_size: int,
        window: int = 100_000,
        gap: Callable[[str], float] = lambda host: 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shard_size = shard_size
        self.window = max(window, shard_size)
        self.read = 0  # URLs read from the list so far
        self.queued = 0
        self._urls: Iterator[UrlItem] | None = iter(urls)
        self._gap = gap
        self._clock = clock
        self._queues: dict[int, deque[Item]] = {}
        self._held: set[int] = set()
        self._ready_at: dict[int, float] = {}  # groups whose last shard ended under a gap ago

    def next_shard(self, share: int = 1) -> Shard | None:
        """A shard from idle groups, leaving some for ``share - 1`` more free workers; None if
        every group with URLs left is held.

        Groups still within their gap go only when no other is idle (the shard then waits).
        The largest go first (a hot host's group starts at once), dealt in turn (every
        ``share``-th), so the free workers get groups of like sizes.
        """
        self._fill()
        now = self._clock()
        idle = [group for group in self._queues if group not in self._held]
        idle = [group for group in idle if self._ready_at.get(group, now) <= now] or idle
        idle.sort(key=lambda group: len(self._queues[group]), reverse=True)
        picked = idle[:: max(1, share)][: self.shard_size]
        if not picked:
            return None
        items = _deal([self._queues[group] for group in picked], self.shard_size)
        self.queued -= len(items)
        for group in picked:
            if not self._queues[group]:
                del self._queues[group]
        self._held.update(picked)
        wait = max(0.0, *(self._ready_at.pop(group, now) - now for group in picked))
        gap = max(self._gap(host) for host in {_host_of(url) for _, url, _ in items})
        return Shard([u for _, u, _ in items], [i for i, _, _ in items],
                     [m for _, _, m in items], frozenset(picked), wait, gap)  # fmt: skip

    def release(
        self,
        shard: Shard,
        *,
        unsent: Iterable[Item] = (),
        after: float = 0.0,
        hold: Mapping[int, float] | None = None,
    ) -> None:
        """The shard has ended: its groups may go into the next one, one gap (plus ``after``)
        from now, or later where ``hold`` says (seconds by group: a remembered pause or gap);
        ``unsent`` URLs go back to the front of their groups' queues."""
        for item in reversed(list(unsent)):
            self.put_first(item)
        self._held.difference_update(shard.groups)
        now, hold = self._clock(), hold or {}
        for group in shard.groups:
            wait = max(shard.gap + after, hold.get(group, 0.0))
            if wait > 0:
                self._ready_at[group] = now + wait

    def put_first(self, item: Item) -> None:
        """Queue ``item`` first in its group: a URL sent again, a redirect handed back."""
        self._queues.setdefault(host_group(item[1]), deque()).appendleft(item)
        self.queued += 1

    @property
    def empty(self) -> bool:
        """Every URL has been read and handed out."""
        self._fill()
        return not self._queues

    def _fill(self) -> None:
        # The list is read as shards are cut, so it may be longer than memory; a bad line in
        # it raises here, in the client's dispatching thread, which hands the error on.
        while self._urls is not None and self.queued < self.window:
            item = next(self._urls, _NO_MORE)
            if item is _NO_MORE:
                self._urls = None
                return
            if isinstance(item, SitemapItem):  # its pages would have to come back here
                raise InputError(f"{item.url}: sitemaps are not fetched on a dask cluster "
                                 "yet; fetch them on one machine")  # fmt: skip
            url, meta, asked = split_item(item)
            # A UrlRequest goes to the worker as it is, but its meta stays here.
            sent: Any = url if asked is None else replace(asked, meta=None)
            self._queues.setdefault(host_group(sent), deque()).append((self.read, sent, meta))
            self.read += 1
            self.queued += 1


def _deal(queues: list[deque[Item]], size: int) -> list[Item]:
    # One URL from each queue in turn, so the hosts of a shard all start together.
    items: list[Item] = []
    while queues and len(items) < size:
        items.extend(queue.popleft() for queue in queues[: size - len(items)])
        queues = [queue for queue in queues if queue]
    return items


class _Dispatch:
    """The client side of one run. A thread of its own starts shards on free workers, takes
    the Results workers send back and ends shards, so a slow consumer never idles the
    cluster; the caller's thread only yields Results.

    A finished shard's future is released at once: while the client holds one, dask computes
    it again if its worker dies. The claim keeps such a copy from fetching anything, and
    releasing the future keeps it from even starting.
    """

    def __init__(
        self, plan: ShardPlan, config: FetchConfig, client: Client, clock: Callable[[], float]
    ) -> None:
        dask = _dask()
        self._plan = plan
        self._config = config
        # Pickled here and unpickled inside the task: a caller's function (retry_if) that a
        # worker cannot import is then the task's error, not a broken link to the worker.
        self._config_blob: bytes = importlib.import_module("cloudpickle").dumps(config)
        self._client: Any = client
        self._clock = clock
        channel = f"urlfleet-{uuid.uuid4().hex[:12]}"
        self._channel = channel
        self._inbox = dask.Queue(f"{channel}-results", client=client)
        self._stop_flag = dask.Event(f"{channel}-stop", client=client)
        self._names = (f"{channel}-shard-{n}" for n in itertools.count())
        self._running: dict[str, _Task] = {}  # by key
        self._slots_known, self._slots_checked = 1, float("-inf")
        self._losses: dict[int, int] = {}  # input index: shards it was lost with
        self._slowest = 0.0  # the longest request seen: how long a lost one may still run
        self._memories = _Memories(clock)
        self._handed_at: dict[int, float] = {}  # input index of a Hop: when it came back
        self._stopping = threading.Event()
        self._halted = threading.Event()
        self._out: queue.SimpleQueue[list[Result] | BaseException | None] = queue.SimpleQueue()
        # Results in ``_out`` the caller has not taken yet. Past ``plan.window`` of them no
        # new shard starts, so a slow consumer holds back the cluster, not fills memory: the
        # client then holds at most that, the running shards' URLs and the plan's window.
        self._held = 0
        self._held_lock = threading.Lock()

    def stop(self) -> None:
        self._stopping.set()
        self._stop_flag.set()

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
                self._inbox.close()
                self._stop_flag.clear()
                self._client.run_on_scheduler(CLAIMS.close, self._channel)

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
            _check_workers(self._client)
            _register_last_words(self._client)
            while not self._halted.is_set():
                self._submit()
                if not self._running:
                    if self._backlogged() and not self._stopping.is_set():
                        time.sleep(POLL_S)  # the caller is behind: more comes once it catches up
                        continue
                    break
                done = {key for key, task in self._running.items() if task.future.done()}
                # A shard's messages were all put before it ended (or before its claimant's
                # connection went): drained after that was seen, nothing of it is to come.
                arrived = self._drain()
                if arrived:
                    self._hand_over(arrived)
                ended = [t for key, t in self._running.items() if self._over(t, key in done)]
                for task in ended:
                    self._end(task)
                if not ended and not arrived:
                    time.sleep(POLL_S)
        except (UrlfleetError, KeyboardInterrupt) as exc:  # for the caller's thread to raise
            self._out.put(exc)
        except Exception as exc:  # a lost scheduler, mostly: one line for the user, not a trace
            error = ClusterError(f"lost touch with the dask cluster: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            self._out.put(error)
        finally:
            if self._running:  # halted: they hear the stop flag and end after what is in flight
                self._client.cancel([task.future for task in self._running.values()])
            self._out.put(None)

    def _over(self, task: _Task, done: bool) -> bool:
        """Whether a shard has ended: its ShardEnd came, or its task is done (an error, or a
        copy that found the claim taken) and whoever claimed it is gone, as of a look taken
        before the last drain."""
        if task.end is not None or task.claimant_gone:
            return True
        if not done:
            return False
        if task.future.status == "error" and not isinstance(
            task.future.exception(), _dask().KilledWorker
        ):
            return True  # _end raises it
        now = self._clock()
        if now >= task.checked_at + CLAIM_CHECK_S:
            task.checked_at = now
            claimant = self._client.run_on_scheduler(
                CLAIMS.claimant, self._channel, task.future.key
            )
            # Gone now, it sends nothing more: the next drain has the last of it.
            task.claimant_gone = claimant != "alive"
        return False

    def _submit(self) -> None:
        if self._stopping.is_set() or self._backlogged():
            return
        for share in range(self._slots() - len(self._running), 0, -1):
            shard = self._plan.next_shard(share)
            if shard is None:
                return
            key = next(self._names)
            urls = [self._resumed(i, url) for i, url in zip(shard.indexes, shard.urls, strict=True)]
            future = self._client.submit(
                fetch_shard, urls, self._config_blob, channel=self._channel, wait=shard.wait,
                groups=shard.groups, memories=self._memories.of(shard.groups),
                key=key, pure=False,
            )  # fmt: skip
            self._running[key] = _Task(future, shard)

    def _resumed(self, index: int, url: Any) -> Any:
        # A Hop's time so far goes on while it waits here for its group's turn.
        since = self._handed_at.pop(index, None)
        if since is None or not isinstance(url, Hop):
            return url
        return replace(url, elapsed_s=url.elapsed_s + max(0.0, self._clock() - since))

    def _slots(self) -> int:
        # Workers come and go, but asking the scheduler on every poll is a message per 50 ms.
        now = self._clock()
        if now >= self._slots_checked + 1.0:
            self._slots_known, self._slots_checked = _slots(self._client), now
        return self._slots_known

    def _drain(self) -> list[Result]:
        arrived: list[Result] = []
        for key, payload in self._inbox.get(batch=True):
            task = self._running.get(key)
            if task is None:
                continue  # from a shard already ended and sent again: it counts there
            shard = task.shard
            for message in pickle.loads(payload):
                if isinstance(message, ShardEnd):
                    task.end = message
                    self._memories.update(message.memories)
                elif isinstance(message, Hop):
                    task.sent.add(message.index)
                    self._hand_back(shard.items([message.index])[0], message)
                else:
                    task.sent.add(message.index)
                    self._slowest = max(self._slowest, min(message.elapsed_s, self._config.timeout))
                    arrived.append(
                        replace(
                            message,
                            index=shard.indexes[message.index],
                            meta=shard.metas[message.index],
                        )
                    )
        return arrived

    def _hand_back(self, item: Item, hop: Hop) -> None:
        # The redirect goes on in a shard of its target's group, first in that group's queue.
        if self._stopping.is_set():
            return  # as on one machine: a hop waiting when the run stops is not fetched
        index, _, meta = item
        self._handed_at[index] = self._clock()
        self._plan.put_first((index, replace(hop, index=-1), meta))

    def _end(self, task: _Task) -> None:
        del self._running[task.future.key]
        shard, future = task.shard, task.future
        if future.status == "error":
            error = future.exception()
            if isinstance(error, SaveError):
                raise error  # a full disk on the worker: every later body would fail too
            if not isinstance(error, _dask().KilledWorker):
                raise ClusterError(
                    f"a shard failed on the cluster: {type(error).__name__}: {error} (is "
                    "the same urlfleet installed on every worker?)"
                ) from error
        future.release()
        hold = self._memories.hold(shard.groups)
        unsent = shard.items(p for p in range(len(shard.urls)) if p not in task.sent)
        if not unsent or self._stopping.is_set():
            self._plan.release(shard, hold=hold)
            return
        if task.end is not None:
            # Stopped early (its worker is retiring): nothing of it is still in flight.
            self._plan.release(shard, unsent=unsent, hold=hold)
            return
        # Lost with a worker (or not run at all): its requests in flight may still be running
        # on their servers; the URLs go again once they must have ended.
        again: list[Item] = []
        given_up: list[Item] = []
        for item in unsent:
            self._losses[item[0]] = losses = self._losses.get(item[0], 0) + 1
            (given_up if losses >= MAX_LOSSES else again).append(item)
        after = self._slowest or self._config.timeout
        self._plan.release(shard, unsent=again, after=after, hold=hold)
        if given_up:
            self._hand_over(_lost(given_up, f"worker died while fetching ({MAX_LOSSES} times)"))


class _Memories:
    """The latest state of each host that has one, as shards left it; times kept as
    deadlines on this machine's clock, shipped as seconds from then. Bounded: a state that
    has run out is dropped when next looked at, and past ``MAX_MEMORIES`` the oldest go."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._kept: dict[str, tuple[float, HostMemory]] = {}  # host: (when received, memory)
        self._by_group: dict[int, set[str]] = {}

    def update(self, memories: Mapping[str, HostMemory | None]) -> None:
        now = self._clock()
        for key, memory in memories.items():
            self._forget(key)
            if memory is not None:
                self._kept[key] = (now, memory)
                self._by_group.setdefault(key_group(key), set()).add(key)
        while len(self._kept) > MAX_MEMORIES:
            self._forget(next(iter(self._kept)))

    def of(self, groups: Iterable[int]) -> dict[str, HostMemory]:
        """What a shard of ``groups`` starts from, aged to now."""
        now = self._clock()
        memories: dict[str, HostMemory] = {}
        for group in groups:
            for key in list(self._by_group.get(group, ())):
                received, memory = self._kept[key]
                aged = _aged(memory, now - received)
                if aged is None:
                    self._forget(key)
                else:
                    memories[key] = aged
        return memories

    def hold(self, groups: Iterable[int]) -> dict[int, float]:
        """How long each of ``groups`` must wait for a pause or gap its last shard left."""
        hold: dict[int, float] = {}
        for key, memory in self.of(groups).items():
            wait = max(memory.paused_for, memory.gap_for)
            if wait > 0:
                group = key_group(key)
                hold[group] = max(hold.get(group, 0.0), wait)
        return hold

    def _forget(self, key: str) -> None:
        if self._kept.pop(key, None) is not None:
            keys = self._by_group[key_group(key)]
            keys.discard(key)
            if not keys:
                del self._by_group[key_group(key)]


def _aged(memory: HostMemory, seconds: float) -> HostMemory | None:
    # A memory ``seconds`` later: its pause and gap that much shorter; None once it says nothing.
    aged = replace(
        memory,
        paused_for=max(0.0, memory.paused_for - seconds),
        gap_for=max(0.0, memory.gap_for - seconds),
    )
    return None if aged == HostMemory() else aged


def _check_workers(client: Any) -> None:
    # A worker that cannot import urlfleet cannot even read a shard: dask then drops its link
    # to the worker again and again. Better said once, before the first shard.
    try:
        versions = client.run(_urlfleet_version)
    except Exception as exc:
        raise ClusterError(
            f"a dask worker cannot run urlfleet ({type(exc).__name__}: {exc}): install the "
            "same urlfleet on every worker"
        ) from exc
    odd = {worker: version for worker, version in versions.items() if version != __version__}
    if odd:
        worker, version = next(iter(odd.items()))
        raise ClusterError(
            f"dask worker {worker} has urlfleet {version}, this machine {__version__}: "
            "install the same urlfleet on every worker"
        )


def _urlfleet_version() -> str:
    return __version__


@dataclass(slots=True)
class _Task:
    """A running shard: its future, the shard positions whose Results (or Hops) came back,
    its ShardEnd once it came, and what the client last heard of its claimant."""

    future: Any
    shard: Shard
    sent: set[int] = field(default_factory=set)
    end: ShardEnd | None = None
    claimant_gone: bool = False
    checked_at: float = float("-inf")


def _slots(client: Any) -> int:
    # One shard per worker thread; workers that join later get shards as they come.
    return max(1, int(sum(client.nthreads().values())))


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


# -- claims, kept on the scheduler ---------------------------------------------------------


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


# -- on the worker -------------------------------------------------------------------------


def fetch_shard(
    urls: list[Any],
    config_blob: bytes,
    *,
    channel: str,
    wait: float = 0.0,
    groups: frozenset[int] = frozenset(),
    memories: Mapping[str, HostMemory] | None = None,
) -> int:
    """Fetch one shard on a worker with the usual threaded run, after ``wait`` seconds.

    Results go to the client as they come, through the run's queue, with shard positions as
    ``index``; so do Hops, redirects to hosts outside ``groups``; last comes a ShardEnd with
    the hosts' states. The run starts from ``memories``. Returns how many Results, or
    ``DUPLICATE`` at once when another copy of this shard has claimed it.
    """
    dask = _dask()
    started = time.monotonic()
    client, worker = dask.get_client(), dask.get_worker()
    key = worker.get_current_task()
    if not client.run_on_scheduler(CLAIMS.claim, channel, key, client.id):
        return DUPLICATE
    stop_flag = dask.Event(f"{channel}-stop", client=client)
    live = _LiveShard(worker.address)
    outbox = _Outbox(dask.Queue(f"{channel}-results", client=client), key)
    try:
        if _told_to_stop(stop_flag, live, wait):
            outbox.send(ShardEnd({}))
            return 0
        config: FetchConfig = pickle.loads(config_blob)
        waited = time.monotonic() - started  # the memories' times count from the client's send
        inherited = {host: _aged(memory, waited) for host, memory in (memories or {}).items()}
        run = Run(
            config,
            keeps_host=lambda host: key_group(host) in groups,
            hand_back=outbox.send,
            memories={host: memory for host, memory in inherited.items() if memory is not None},
        )
        live.begin(run, config.timeout)
        finished = threading.Event()
        watcher = threading.Thread(
            target=_stop_when_told, args=(stop_flag, run, finished), daemon=True
        )
        watcher.start()
        sent = 0
        results = run.results(urls)
        try:
            for result in results:
                outbox.send(result if config.keep_content else replace(result, content=b""))
                sent += 1
            outbox.send(ShardEnd(run.host_memories()))
        finally:
            finished.set()
            run.stop()  # on an error here: the run's threads must not go on fetching unseen
            getattr(results, "close", lambda: None)()
        return sent
    finally:
        live.end()
        outbox.close()  # every message is on the scheduler before the shard ends


def _told_to_stop(stop_flag: Any, live: _LiveShard, wait: float) -> bool:
    # The shard's start gap, cut short by a stop of the run or of this worker.
    deadline = time.monotonic() + wait
    while True:
        if live.stopped.is_set():
            return True
        left = deadline - time.monotonic()
        if stop_flag.wait(min(left, STOP_POLL_S)) if left > 0 else stop_flag.is_set():
            return True
        if left <= 0:
            return False


class _LiveShard:
    """A shard running in this process, for its worker to stop when it retires."""

    _all: ClassVar[dict[str, set[_LiveShard]]] = {}  # by worker address
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.stopped = threading.Event()
        self.timeout = 0.0  # the longest a request of its run may take
        self._run: Run | None = None
        with self._lock:
            self._all.setdefault(worker, set()).add(self)

    def begin(self, run: Run, timeout: float) -> None:
        with self._lock:
            self._run, self.timeout = run, timeout

    def stop(self) -> None:
        self.stopped.set()
        with self._lock:
            run = self._run
        if run is not None:
            run.stop()

    def end(self) -> None:
        with self._lock:
            shards = self._all.get(self.worker, set())
            shards.discard(self)
            if not shards:
                self._all.pop(self.worker, None)

    @classmethod
    def on(cls, worker: str) -> list[_LiveShard]:
        with cls._lock:
            return list(cls._all.get(worker, ()))


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
        await asyncio.sleep(POLL_S)


class _Outbox:
    """Messages on their way to the client: a thread puts them on the run's queue in batches
    of what came within ``SEND_EVERY_S`` of the first (the last one at once), so the
    scheduler gets a few puts a second per shard however fast the URLs go. ``send`` may be
    called from any thread."""

    def __init__(self, inbox: Any, key: str) -> None:
        self._inbox = inbox
        self._key = key
        self._pending: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._send_all, daemon=True)
        self._thread.start()

    def send(self, message: object) -> None:
        if self._error is not None:
            raise self._error
        self._pending.put(message)

    def close(self) -> None:
        self._pending.put(None)
        self._thread.join()
        with contextlib.suppress(Exception):
            self._inbox.close()  # each handle holds the queue on the scheduler
        if self._error is not None:
            raise self._error

    def _send_all(self) -> None:
        item = self._pending.get()
        while item is not None:
            batch = [item]
            deadline = time.monotonic() + SEND_EVERY_S
            while (left := deadline - time.monotonic()) > 0:
                try:
                    item = self._pending.get(timeout=left)
                except queue.Empty:
                    break
                if item is None:  # the shard has ended: the last batch goes now
                    break
                batch.append(item)
            self._put(batch)
            if item is not None:  # it is in the batch just sent
                item = self._pending.get()

    def _put(self, batch: list[object]) -> None:
        if self._error is None:
            try:
                self._inbox.put([self._key, pickle.dumps(batch)])
            except BaseException as exc:  # noqa: BLE001 - raised in the shard's thread
                self._error = exc


def _stop_when_told(stop_flag: Any, run: Run, finished: threading.Event) -> None:
    while not finished.is_set():
        try:
            told = stop_flag.wait(STOP_POLL_S)
        except Exception:  # the scheduler is gone: the client counts this shard as lost
            run.stop()
            return
        while told and not finished.wait(0.1):
            run.stop()  # again until it takes: the run may not have begun


# -- dask, imported only when used ----------------------------------------------------------


def _dask() -> Any:
    try:
        return importlib.import_module("distributed")
    except ImportError as exc:
        raise InputError(DASK_HINT) from exc


def _local_workers(address: str) -> int:
    count = address.removeprefix("local:")
    if not count.isdigit() or int(count) < 1:
        raise InputError(f"--dask: local:N needs a number of workers >= 1, got {address!r}")
    return int(count)
