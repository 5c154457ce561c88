"""robots.txt, when asked for (``--robots``): fetched once per host, politely, and obeyed.

Off by default, as in wget and curl for explicit URL lists. Parsing is Protego's (Scrapy's
parser), which also reads fractional Crawl-delay values such as 0.5 that the standard
library's parser ignores. What an answer means follows RFC 9309 and Google's practice:

- 2xx: the rules apply; a Crawl-delay becomes the host's minimum gap (capped);
- 4xx: there are no rules: everything is allowed;
- 5xx, 429 or no answer: the host is deferred and asked again later; after as many tries as
  ``--retries`` allows, its URLs fail with the reason rather than be fetched unchecked.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from protego import Protego

ROBOTS_MAX_BYTES = 500 * 1024  # RFC 9309: crawlers may ignore what lies past 500 KiB


@dataclass(frozen=True, slots=True)
class Robots:
    """One host's robots.txt as understood: rules (None: allow all) and its crawl delay."""

    rules: Protego | None
    crawl_delay: float = 0.0

    def allows(self, url: str, user_agent: str) -> bool:
        return self.rules is None or bool(self.rules.can_fetch(url, user_agent))


ALLOW_ALL = Robots(rules=None)


def robots_url(url: str) -> str:
    """Where a URL's host keeps its robots.txt."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/robots.txt"


def understand(status: int, body: bytes, user_agent: str, max_crawl_delay: float) -> Robots:
    """Robots from a robots.txt response that was answered (2xx or 4xx)."""
    if not 200 <= status < 300:
        return ALLOW_ALL
    rules = Protego.parse(body[:ROBOTS_MAX_BYTES].decode("utf-8", errors="replace"))
    delay = rules.crawl_delay(user_agent)
    return Robots(rules=rules, crawl_delay=min(float(delay or 0.0), max_crawl_delay))


class RobotsBook:
    """What each host's robots.txt said, for the run; thread-safe.

    A host is *unknown* until its robots.txt has been fetched and understood.
    """

    def __init__(self) -> None:
        self._known: dict[str, Robots] = {}
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()

    def get(self, host: str) -> Robots | None:
        return self._known.get(host)

    def learn(self, host: str, robots: Robots) -> None:
        with self._lock:
            self._known[host] = robots
            self._failures.pop(host, None)

    def failed(self, host: str) -> int:
        """Count one failed try to fetch a host's robots.txt; returns the tries so far."""
        with self._lock:
            self._failures[host] = self._failures.get(host, 0) + 1
            return self._failures[host]
