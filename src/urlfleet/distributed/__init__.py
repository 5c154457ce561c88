"""Fetching in shards of URLs, each host in one shard at a time: on a dask.distributed
cluster, or in worker processes on this machine (``--processes``).

Every host belongs to one of a fixed number of groups by a stable hash of its ``host_key``.
The client cuts the list into small shards, each taken from groups that no running shard
holds. A worker fetches a shard with the usual threaded run and its per-host limits, so no
host ever has two shards running anywhere: ``per_host`` and ``delay`` hold for the whole
cluster without a shared store. Many small shards keep every worker busy: while a hot host's
group runs shard after shard, the other groups go to the other workers. Workers send Results
back as they come; a worker that dies costs only its requests in flight, and what a host's
state says (pauses, gaps, robots.txt) goes on with the host's next shard.

The parts, in the order a run meets them:

- ``plan``: the pure shard planning (``host_group``, ``ShardPlan``);
- ``dispatch``: the client side running shards on any engine (``ShardRun``);
- ``cluster``: the seam between the two, what the dispatch and a shard ask of an engine;
- ``worker``: what runs on a worker, whichever engine (``run_shard``);
- ``daskcluster``: the dask engine (``ClusterRun``, ``fetch_distributed``, ``fetch_shard``),
  with ``client`` (connecting, checking the workers run this urlfleet) and ``claims``
  (which copy of a shard may fetch, kept on the scheduler);
- ``local``: the engine of processes on this machine, loky's (``LocalProcesses``).

The politeness rules between a host's shards (what the next one inherits, how long it waits)
are not here but in ``urlfleet.politeness.shards``, with every other per-host rule.

Nothing here imports dask until a cluster is used.
"""

from urlfleet.distributed.client import DASK_HINT, client_for
from urlfleet.distributed.cluster import Cluster, ShardCall, ShardLink
from urlfleet.distributed.daskcluster import ClusterRun, fetch_distributed, fetch_shard
from urlfleet.distributed.dispatch import MAX_LOSSES, ShardRun
from urlfleet.distributed.plan import HOST_GROUPS, Shard, ShardPlan, host_group, key_group
from urlfleet.distributed.worker import DUPLICATE, ShardEnd, run_shard

__all__ = [
    "DASK_HINT",
    "DUPLICATE",
    "HOST_GROUPS",
    "MAX_LOSSES",
    "Cluster",
    "ClusterRun",
    "Shard",
    "ShardCall",
    "ShardEnd",
    "ShardLink",
    "ShardPlan",
    "ShardRun",
    "client_for",
    "fetch_distributed",
    "fetch_shard",
    "host_group",
    "key_group",
    "run_shard",
]
