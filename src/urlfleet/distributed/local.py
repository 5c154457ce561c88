"""Shards in worker processes on this machine (``--processes N``): the engine behind the
``Cluster`` seam that needs no dask.

loky, joblib's process backend, runs the shards (one at a time per process, each with its
own fetch threads); their messages come back through a queue served from a thread of this
process (a ``multiprocessing`` manager's server, not a process of its own). When this process
dies, so does the queue: a worker's next message fails and its shard stops, so no orphan goes
on fetching what no one records.

Each worker process is a loky pool of its own (one worker): a worker killed mid-shard breaks
its pool alone, where one pool of N workers would fail every running shard at once and kill
the other workers with it, charging their innocent URLs a loss too. The killed worker's
shard is then one lost with its worker, as on a dask cluster: what it had sent is kept, and
only its URLs not sent go again, in that worker's new pool, once the lost requests must have
ended. The other workers go on. Tasks never run twice here, so there are no claims.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from multiprocessing import current_process
from multiprocessing.connection import Client
from multiprocessing.managers import Server, SyncManager
from typing import Any, cast

from joblib.externals.loky import ProcessPoolExecutor

from urlfleet.config import DEFAULT_LOCAL_SHARD_SIZE, FetchConfig
from urlfleet.distributed.cluster import ShardCall, ShardTask, StopFlag
from urlfleet.distributed.dispatch import ShardRun
from urlfleet.distributed.worker import run_shard
from urlfleet.errors import ClusterError
from urlfleet.fetching.adapter import threads_for
from urlfleet.read.items import UrlItem
from urlfleet.record.records import Result

PARENT_WATCH_S = 0.2  # how often a worker looks whether the process it works for is alive


def fetch_in_processes(
    urls: Iterable[UrlItem],
    config: FetchConfig,
    *,
    processes: int,
    shard_size: int | None = None,
    size: int | None = None,
) -> Iterator[Result]:
    """Fetch ``urls`` in ``processes`` worker processes here; yield each Result as it comes.

    ``size``: how many URLs the list holds, if known (it picks the shard size).

    >>> for result in fetch_in_processes(urls, config, processes=2): write(result)
    """
    with processes_run(config, processes, shard_size=shard_size, size=size) as run:
        yield from run.results(urls)


@contextmanager
def processes_run(
    config: FetchConfig, processes: int, *, shard_size: int | None = None, size: int | None = None
) -> Iterator[ShardRun]:
    """A ShardRun on ``processes`` new worker processes, closed when the block ends.

    ``config.jobs`` counts the threads of all processes together: each runs its share.
    """
    per_process = max(1, math.ceil(threads_for(config.jobs) / processes))
    with LocalProcesses(processes) as pool:
        yield ShardRun(
            replace(config, jobs=per_process),
            connect=pool.connect,
            shard_size=shard_size or local_shard_size(size, processes),
        )


def local_shard_size(size: int | None, processes: int) -> int:
    """URLs per shard: an equal share of a list of known ``size`` (one shard per process,
    so a short list is cut once), up to DEFAULT_LOCAL_SHARD_SIZE."""
    if size is None:
        return DEFAULT_LOCAL_SHARD_SIZE
    return max(1, min(DEFAULT_LOCAL_SHARD_SIZE, math.ceil(size / processes)))


class LocalProcesses:
    """Worker processes and the queue server their shards talk through; a context manager.
    ``connect()`` opens one run's channels on them (a ``Cluster``).

    >>> with LocalProcesses(2) as pool: run = ShardRun(config, connect=pool.connect)
    """

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        self.processes = processes
        self._server: Any = None
        self._manager: SyncManager | None = None
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()

    def __enter__(self) -> LocalProcesses:
        self._server = _QueueServer(SyncManager._registry, None,  # type: ignore[attr-defined]
                                    current_process().authkey, "pickle")  # fmt: skip
        threading.Thread(target=_serve, args=(self._server,), daemon=True,
                         name="urlfleet-shard-queues").start()  # fmt: skip
        self._manager = SyncManager(address=self._server.address)
        self._manager.connect()
        self._workers = [_Worker(executor) for executor in _new_executors(self.processes)]
        return self

    def __exit__(self, *exc_info: object) -> None:
        for worker in self._workers:
            worker.executor.shutdown(wait=True)
        if self._server is not None:
            self._server.stop_event.set()
            with contextlib.suppress(OSError):  # wakes its accepter, to see the stop
                Client(self._server.address).close()  # no handshake: it is not served
            self._server.listener.close()

    def connect(self) -> LocalCluster:
        assert self._manager is not None, "use LocalProcesses in a with block"
        manager: Any = self._manager
        return LocalCluster(self, manager.Queue(), manager.Event())

    def submit(self, *task: Any) -> tuple[Future[int], ProcessPoolExecutor]:
        """Run ``task`` (a function and its arguments) on the worker with the fewest shards
        given and not done (a shard that has sent its end may still be returning)."""
        with self._lock:
            assert self._workers, "use LocalProcesses in a with block"
            worker = min(self._workers, key=_Worker.pending)
            future = worker.executor.submit(*task)
            worker.futures.append(future)
            return future, worker.executor

    def renew(self, broken: ProcessPoolExecutor) -> None:
        """A new pool in place of ``broken`` (once), after its worker is gone."""
        with self._lock:
            for worker in self._workers:
                if worker.executor is broken:
                    broken.shutdown(wait=True)  # loky has killed its worker: this waits for that
                    worker.executor, worker.futures = _new_executors(1)[0], []


@dataclass(slots=True)
class _Worker:
    """One worker process: its pool of one, and the shards given to it."""

    executor: ProcessPoolExecutor
    futures: list[Future[int]] = field(default_factory=list)

    def pending(self) -> int:
        self.futures = [future for future in self.futures if not future.done()]
        return len(self.futures)


@dataclass(slots=True)
class _LocalTask:
    """A shard's future and the pool it was submitted to (renewed if that one broke)."""

    future: Future[int]
    key: str
    executor: ProcessPoolExecutor

    def done(self) -> bool:
        return self.future.done()

    def error(self) -> BaseException | None:
        return None if self.future.cancelled() else self.future.exception()

    def release(self) -> None:
        pass  # a finished loky future holds nothing


class LocalCluster:
    """One run's channels on local processes (see ``Cluster``): its queue and stop flag."""

    def __init__(self, pool: LocalProcesses, inbox: Any, stop_flag: Any) -> None:
        self._pool = pool
        self._inbox = inbox
        self._stop_flag = stop_flag

    def prepare(self) -> None:
        pass  # the workers run this very urlfleet

    def slots(self) -> int:
        return self._pool.processes

    def submit(self, key: str, call: ShardCall) -> ShardTask:
        future, executor = self._pool.submit(_fetch_local, key, call, self._inbox, self._stop_flag)
        return _LocalTask(future, key, executor)

    def messages(self) -> list[tuple[str, bytes]]:
        arrived: list[tuple[str, bytes]] = []
        while True:
            try:
                arrived.append(self._inbox.get_nowait())
            except queue.Empty:
                return arrived

    def stop(self) -> None:
        self._stop_flag.set()

    def cancel(self, tasks: list[ShardTask]) -> None:
        for task in tasks:  # those not started; a running one hears the stop flag
            cast(_LocalTask, task).future.cancel()

    def failure(self, error: BaseException) -> BaseException | None:
        if isinstance(error, BrokenProcessPool):  # loky's TerminatedWorkerError among them
            return None
        failed = ClusterError(
            f"a shard failed in a worker process: {type(error).__name__}: {error}"
        )
        failed.__cause__ = error
        return failed

    def holder_gone(self, task: ShardTask) -> bool:
        # Only a broken pool ends a task with no ShardEnd: its worker is dead, and once the
        # new pool is there, it is certainly not left to send anything.
        local = cast(_LocalTask, task)
        if isinstance(local.error(), BrokenProcessPool):
            self._pool.renew(local.executor)
        return True

    def close(self) -> None:
        self._stop_flag.set()  # a shard still waiting to start, cancelled too late, ends at once


# -- in a worker process -------------------------------------------------------------------


def _fetch_local(key: str, call: ShardCall, inbox: Any, stop_flag: Any) -> int:
    return run_shard(call, _LocalLink(key, inbox, stop_flag))


class _LocalLink:
    """A shard's channel in a local worker process (see ``ShardLink``): the parent's queue
    and stop flag, through manager proxies."""

    def __init__(self, key: str, inbox: Any, stop_flag: Any) -> None:
        self._key = key
        self._inbox = inbox
        self._stop_flag = stop_flag
        self.worker = f"pid {os.getpid()}"

    def claim(self) -> bool:
        return True  # loky never runs a task twice

    @property
    def stop_flag(self) -> StopFlag:
        flag: StopFlag = self._stop_flag
        return flag

    def send(self, batch: bytes) -> None:
        self._inbox.put((self._key, batch))

    def close(self) -> None:
        pass


class _QueueServer(Server):
    """A manager's server, on a thread of this process, whose accepter ends at the stop.

    The standard accepter retries a failed accept for ever, as a server that is a process of
    its own may: on a thread, once its listener is closed, it would spin on a core for as
    long as this process lives, one more for every run.
    """

    listener: Any  # set by Server, typed here as this class uses them
    stop_event: threading.Event

    def accepter(self) -> None:
        while not self.stop_event.is_set():
            try:
                connection = self.listener.accept()
            except OSError:
                continue  # the listener is closed only after the stop: the loop then ends
            if self.stop_event.is_set():
                connection.close()
                return
            threading.Thread(target=self.handle_request, args=(connection,),
                             daemon=True).start()  # fmt: skip


def _serve(server: Any) -> None:
    # A manager's server ends its serve_forever with sys.exit(), made for a process of its own.
    with contextlib.suppress(SystemExit):
        server.serve_forever()


def _new_executors(processes: int) -> list[ProcessPoolExecutor]:
    # Ctrl-C reaches every process of the terminal's group: the workers must leave it to
    # this one, which stops the run and lets the requests in flight finish. Started with
    # SIGINT ignored (from the main thread, where that can be set), they never see it, not
    # even while they import; the initializer says so again for a pool renewed elsewhere.
    executors = [ProcessPoolExecutor(max_workers=1, initializer=_worker_start)
                 for _ in range(processes)]  # fmt: skip
    if threading.current_thread() is not threading.main_thread():
        for started in [executor.submit(int) for executor in executors]:
            started.result()  # the workers start now, not at the first shard
        return executors
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for executor in executors:
            executor.submit(int)  # loky starts its worker in this thread, on the first submit
    finally:
        signal.signal(signal.SIGINT, previous)
    return executors


def _worker_start() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True,
                     name="urlfleet-parent-watch").start()  # fmt: skip
    # The fetching modules load now, while the parent still reads its list.
    import urlfleet.distributed.worker  # noqa: F401


def _exit_with_parent(parent: int) -> None:
    # A process that ends at once (a second Ctrl-C, a grace run out, a kill) takes its queue
    # server with it, but not loky's workers: each would finish the requests it had in
    # flight, unrecorded, then wait for shards forever. A worker whose parent is gone (it
    # has been handed to another) ends too, within PARENT_WATCH_S.
    while os.getppid() == parent:
        time.sleep(PARENT_WATCH_S)
    os._exit(1)
