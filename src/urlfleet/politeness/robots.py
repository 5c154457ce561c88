"""robots.txt, when asked for (``--robots``): fetched once per host, politely, and obeyed.

Off by default, as in wget and curl for explicit URL lists. Parsing is Protego's (Scrapy's
parser), which also reads fractional Crawl-delay values such as 0.5 that the standard
library's parser ignores. What an answer means follows RFC 9309 and Google's practice:

- 2xx: the rules apply; a Crawl-delay becomes the host's minimum gap (capped);
- 4xx: there are no rules: everything is allowed;
- 5xx, 429 or no answer: retried like any request (the host paused on 429/503); when the
  retries are spent, the host's URLs fail with the reason rather than be fetched unchecked;
- 3xx: followed like any redirect, each hop a request through the frontier; past
  ``--max-redirects`` the file counts as missing (RFC 9309 allows five).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from protego import Protego

ROBOTS_MAX_BYTES = 500 * 1024  # RFC 9309: crawlers may ignore what lies past 500 KiB


class Robots(NamedTuple):
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
    from protego import Protego  # here: only runs with --robots parse a robots.txt

    rules = Protego.parse(body[:ROBOTS_MAX_BYTES].decode("utf-8", errors="replace"))
    delay = rules.crawl_delay(user_agent)
    return Robots(rules=rules, crawl_delay=min(float(delay or 0.0), max_crawl_delay))
