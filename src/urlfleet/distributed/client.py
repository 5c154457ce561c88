"""Connecting to a dask cluster: a running scheduler's address, or ``local:N`` for one on
this machine; and, before the first shard, a look at whether every worker runs this urlfleet.

dask is imported only when one of these is called (``_dask``), never by a plain fetch.
"""

from __future__ import annotations

import importlib
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from urlfleet._version import __version__
from urlfleet.errors import ClusterError, InputError

if TYPE_CHECKING:
    from distributed import Client

DASK_HINT = "--dask needs dask.distributed: install urlfleet[dask]"
NO_PROFILER = {"distributed.worker.profile.enabled": False}  # see _local_client


def client_for(address: str) -> tuple[Client, Callable[[], None]]:
    """A dask Client for ``address`` and the function that closes what was opened for it.

    ``tcp://HOST:PORT`` (or any dask address with a scheme) connects to a running scheduler;
    ``local:N`` starts N worker processes on this machine, one thread each (a shard brings
    its own fetch threads).

    >>> client, close = client_for("local:2"); ...; close()
    """
    dask = _dask()
    if address.startswith("local:"):
        return _local_client(dask, address)
    if "://" not in address:
        raise InputError(f"--dask: expected tcp://HOST:PORT or local:N, got {address!r}")
    try:
        client = dask.Client(address)
    except OSError as exc:
        raise InputError(f"--dask: no dask scheduler at {address} ({exc})") from exc
    return client, client.close


def _local_client(dask: Any, address: str) -> tuple[Client, Callable[[], None]]:
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


def _without_profiler() -> dict[str, Any]:
    config = importlib.import_module("dask").config
    return dict(config.merge(config.config, {"distributed": {"worker": {"profile": {
        "enabled": False}}}}))  # fmt: skip


def _ignore_ctrl_c(self: Any, worker: Any) -> None:
    # A worker plugin's setup: it runs in the worker's event loop, its process's main thread.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


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


def _slots(client: Any) -> int:
    # One shard per worker thread; workers that join later get shards as they come.
    return max(1, int(sum(client.nthreads().values())))


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
