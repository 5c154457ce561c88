"""Shard planning, pure: which URLs go together into a shard, and when a group may go again.

Every host belongs to one of ``HOST_GROUPS`` groups by a stable hash of its ``host_key`` (the
same group in every process and every run, unlike ``hash()``). The plan keeps one queue per
group and cuts the list into shards of at most ``shard_size`` URLs, each taken from groups that
no running shard holds. Nothing here talks to a cluster.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from urlfleet.errors import InputError
from urlfleet.politeness import host_key
from urlfleet.read.items import UrlItem, UrlRequest, split_item
from urlfleet.read.sitemaps import SitemapItem
from urlfleet.run.runner import Hop

# Groups bound the client's queues (one per group, however many hosts); hosts that share a
# group share its turn, so more groups mean fewer hosts waiting on a busy neighbour.
HOST_GROUPS = 4096

Item = tuple[int, Any, Any]  # (input position, url or Hop, meta)
_NO_MORE = object()  # the list's end: a None in it is an item (an invalid URL), not the end


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
    """URLs for one task, what the client keeps back (positions, metas, groups), and
    ``wait``, the seconds before its first request."""

    urls: list[Any]
    indexes: list[int]
    metas: list[Any]
    groups: frozenset[int]
    wait: float = 0.0

    def items(self, positions: Iterable[int]) -> list[Item]:
        return [(self.indexes[p], self.urls[p], self.metas[p]) for p in positions]

    def hosts(self) -> set[str]:
        return {_host_of(url) for url in self.urls}


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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shard_size = shard_size
        self.window = max(window, shard_size)
        self.read = 0  # URLs read from the list so far
        self.queued = 0
        self._urls: Iterator[UrlItem] | None = iter(urls)
        self._clock = clock
        self._queues: dict[int, deque[Item]] = {}
        self._held: set[int] = set()
        self._ready_at: dict[int, float] = {}  # groups to wait for, since their last shard

    def next_shard(self, share: int = 1) -> Shard | None:
        """A shard from idle groups, leaving some for ``share - 1`` more free workers; None if
        every group with URLs left is held.

        Groups still held since their last shard go only when no other is idle (the shard
        then waits).
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
        return Shard([u for _, u, _ in items], [i for i, _, _ in items],
                     [m for _, _, m in items], frozenset(picked), wait)  # fmt: skip

    def release(
        self,
        shard: Shard,
        *,
        unsent: Iterable[Item] = (),
        hold: Mapping[int, float] | None = None,
    ) -> None:
        """The shard has ended: its groups may go into the next one now, or as many seconds
        from now as ``hold`` says (by group; the politeness rules' ``HostMemories.waits``);
        ``unsent`` URLs go back to the front of their groups' queues."""
        for item in reversed(list(unsent)):
            self.put_first(item)
        self._held.difference_update(shard.groups)
        now = self._clock()
        for group, wait in (hold or {}).items():
            if group in shard.groups and wait > 0:
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
