"""Collect page titles: fetch on threads, parse in processes.

    python examples/titles.py            # against the built-in loopback server, no network

The HTML parsing is CPU work, so it runs in worker processes (parse=..., parse_jobs=...)
while the fetch threads keep the network busy.
"""

from __future__ import annotations

from html.parser import HTMLParser

import urlfleet
from urlfleet.loopback import LoopbackProcess, ServerSpec


class TitleParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.in_title = False
        self.title = ""

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self.in_title = False

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title += data


def page_title(result: urlfleet.Result) -> str:
    """Runs in a worker process: must be a module-level (picklable) function."""
    parser = TitleParser()
    parser.feed(result.text)
    return parser.title.strip()


def main() -> None:
    with LoopbackProcess(ServerSpec(hosts=4, latency=0.05)) as server:
        urls = [f"{base}/page/{i}" for i in range(25) for base in server.base_urls]
        titles: dict[str, str] = {}
        for result in urlfleet.fetch(urls, jobs=32, per_host=4, parse=page_title, parse_jobs=2):
            if result.ok and result.parse_error is None:
                titles[result.url] = result.parsed
            else:
                print(f"{result.url}: {result.error or result.parse_error}")
    for url in urls[:5]:
        print(f"{titles[url]!r:40}  {url}")
    print(f"... {len(titles)} titles from {len(urls)} URLs")


if __name__ == "__main__":
    main()
