"""What runs on a worker: ``run_shard``, one shard with the usual threaded run, whichever
engine started it (``daskcluster.fetch_shard``, ``local``): it talks back through a
``ShardLink``.

Results go back to the client as they come, in small batches through the link (a dask
``Queue`` on the scheduler, a queue in the parent process), so the client (the one writer of
records) sees each URL soon after it is fetched.
A worker follows a redirect only to a host of its shard's groups; a hop to any other host goes
back as a ``Hop``. A shard ends with a ``ShardEnd`` carrying ``Politeness.memory`` of every
host it knew. A retiring worker waits, before it closes, for its shards to stop and send what
they have: their requests in flight finish, and the URLs not started go back to the client.
"""

from __future__ import annotations

import contextlib
import pickle
import queue
import threading
import time
from dataclasses import dataclass, field, replace
from http.cookiejar import Cookie
from typing import Any, ClassVar

from urlfleet.config import FetchConfig
from urlfleet.distributed.cluster import ShardCall, ShardLink, StopFlag
from urlfleet.distributed.plan import key_group
from urlfleet.politeness import HostMemory
from urlfleet.politeness.shards import all_aged
from urlfleet.run.runner import Run

SEND_EVERY_S = 0.1  # how long a worker gathers Results before it sends them on
STOP_POLL_S = 0.5  # how long a worker's stop watcher waits on the scheduler per call
DUPLICATE = -1  # what a copy of a shard returns when another copy has claimed it


@dataclass(frozen=True, slots=True)
class ShardEnd:
    """A shard's last message: every host it knew, with what the host's next shard must
    respect (``Politeness.memory``; None: nothing, so forget what was kept), the cookies
    its jar ended with (not those of ``config.cookies``, which every shard has), and the
    CPU seconds its worker process used while the shard ran (a process runs one shard at a
    time on local processes; a dask worker with several threads counts its other shards'
    too)."""

    memories: dict[str, HostMemory | None]
    cpu_s: float = 0.0
    cookies: list[Cookie] = field(default_factory=list)


def run_shard(call: ShardCall, link: ShardLink) -> int:
    """Fetch one shard on a worker with the usual threaded run, after ``call.wait`` seconds.

    Results go to the client as they come, through ``link``, with shard positions as
    ``index``; so do Hops, redirects to hosts outside ``call.groups``; last comes a ShardEnd
    with the hosts' states and cookies. The run starts from ``call.memories`` and
    ``call.cookies``. Returns how many Results,
    or ``DUPLICATE`` at once when another copy of this shard has claimed it.
    """
    started, cpu_at_start = time.monotonic(), time.process_time()
    if not link.claim():
        return DUPLICATE
    live = _LiveShard(link.worker)
    outbox = _Outbox(link)
    try:
        if _told_to_stop(link.stop_flag, live, call.wait):
            outbox.send(ShardEnd({}))
            return 0
        config: FetchConfig = pickle.loads(call.config_blob)
        waited = time.monotonic() - started  # the memories' times count from the client's send
        run = Run(
            config,
            keeps_host=lambda host: key_group(host) in call.groups,
            hand_back=outbox.send,
            memories=all_aged(call.memories, waited),
            cookies=call.cookies,
        )
        live.begin(run, config.timeout)
        return _fetch(run, call.urls, outbox, link.stop_flag, keep_content=config.keep_content,
                      cpu_at_start=cpu_at_start)  # fmt: skip
    finally:
        live.end()
        outbox.close()  # every message is on its way before the shard ends


def _fetch(
    run: Run,
    urls: list[Any],
    outbox: _Outbox,
    stop_flag: StopFlag,
    *,
    keep_content: bool,
    cpu_at_start: float,
) -> int:
    # The shard's URLs through its run, each Result sent as it comes, the hosts' states last.
    finished = threading.Event()
    watcher = threading.Thread(target=_stop_when_told, args=(stop_flag, run, finished), daemon=True)
    watcher.start()
    sent = 0
    results = run.results(urls)
    try:
        for result in results:
            outbox.send(result if keep_content else replace(result, content=b""))
            sent += 1
        cpu_s = time.process_time() - cpu_at_start
        cookies = [cookie for cookie in run.cookies if cookie.domain]  # a host's, not config's
        outbox.send(ShardEnd(run.host_memories(), cpu_s=cpu_s, cookies=cookies))
    finally:
        finished.set()
        run.stop()  # on an error here: the run's threads must not go on fetching unseen
        getattr(results, "close", lambda: None)()
    return sent


def _told_to_stop(stop_flag: StopFlag, live: _LiveShard, wait: float) -> bool:
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


class _Outbox:
    """Messages on their way to the client: a thread puts them on the run's queue in batches
    of what came within ``SEND_EVERY_S`` of the first (the last one at once), so the
    scheduler gets a few puts a second per shard however fast the URLs go. ``send`` may be
    called from any thread."""

    def __init__(self, link: ShardLink) -> None:
        self._link = link
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
            self._link.close()  # a dask Queue's handle holds the queue on the scheduler
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
                self._link.send(pickle.dumps(batch))
            except BaseException as exc:  # noqa: BLE001 - raised in the shard's thread
                self._error = exc


def _stop_when_told(stop_flag: StopFlag, run: Run, finished: threading.Event) -> None:
    while not finished.is_set():
        try:
            told = stop_flag.wait(STOP_POLL_S)
        except Exception:  # the scheduler is gone: the client counts this shard as lost
            run.stop()
            return
        while told and not finished.wait(0.1):
            run.stop()  # again until it takes: the run may not have begun
