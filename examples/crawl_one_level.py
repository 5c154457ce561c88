"""Follow links one level deep: feed the links found back into urlfleet, never refetching.

    python examples/crawl_one_level.py   # against the built-in loopback server, no network

A crawl loop on top of urlfleet: each round fetches the URLs not seen before, with the same
politeness per host, and the links found become the next round's URLs. ``meta`` carries
each URL's depth through the fetch.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import urlfleet
from urlfleet.loopback import LoopbackProcess, ServerSpec


class LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.links.append(href)


def links_of(result: urlfleet.Result) -> list[str]:
    parser = LinkParser()
    parser.feed(result.text)
    base = result.final_url or result.url
    return [urljoin(base, link) for link in parser.links]


def crawl(seeds: list[str], max_depth: int = 1) -> dict[str, int]:
    """Fetch the seeds and what they link to on the same hosts, up to max_depth; URL -> status."""
    seen = set(seeds)
    statuses: dict[str, int] = {}
    frontier = [(url, 0) for url in seeds]
    while frontier:
        found: list[tuple[str, int]] = []
        for result in urlfleet.fetch(frontier, jobs=32, per_host=2, delay=0.01):
            statuses[result.url] = result.status or 0
            depth = result.meta
            if not result.ok or depth >= max_depth:
                continue
            for link in links_of(result):
                same_host = urlsplit(link).netloc == urlsplit(result.url).netloc
                if same_host and link not in seen:  # never the same URL twice
                    seen.add(link)
                    found.append((link, depth + 1))
        frontier = found
    return statuses


def main() -> None:
    with LoopbackProcess(ServerSpec(hosts=3, latency=0.05)) as server:
        seeds = [f"{base}/page/start-{i}" for base in server.base_urls for i in range(3)]
        statuses = crawl(seeds, max_depth=1)
        hits = len(server.records())
    print(
        f"{len(seeds)} seeds -> {len(statuses)} pages fetched, {hits} requests seen by the server"
    )
    assert hits == len(statuses), "a page was fetched twice"


if __name__ == "__main__":
    main()
