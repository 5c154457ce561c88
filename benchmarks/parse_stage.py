"""Parse stage: threads for the network, processes for the CPU, against threads for both.

    python benchmarks/parse_stage.py [--urls 400] [--paragraphs 400] [--repeat 3]

Both variants fetch the same pages (loopback server in its own process, 8 hosts, 50 ms
latency, 32 threads) and extract every page's title and links with the standard library's
HTML parser. "threads only" parses in the fetch threads, under the GIL; "threads +
processes" is urlfleet.fetch(..., parse=fn, parse_jobs=2), which parses in loky processes
while the threads keep fetching. Prints the median wall time of each and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from html.parser import HTMLParser
from pathlib import Path

import requests
from joblib import Parallel, delayed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import urlfleet  # noqa: E402
from urlfleet.loopback import LoopbackProcess, ServerSpec  # noqa: E402


class PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.title, self.links, self._in_title = "", 0, False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_title = tag == "title"
        self.links += tag == "a"

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def parse_page(text: str) -> tuple[str, int]:
    parser = PageParser()
    parser.feed(text)
    return parser.title, parser.links


def parse_result(result: urlfleet.Result) -> tuple[str, int]:
    return parse_page(result.text)


_local = threading.local()


def fetch_and_parse(url: str) -> tuple[str, int]:
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return parse_page(session.get(url, timeout=30).text)


def threads_only(urls: list[str]) -> float:
    started = time.perf_counter()
    parsed = Parallel(n_jobs=32, backend="threading")(delayed(fetch_and_parse)(u) for u in urls)
    assert len(parsed) == len(urls) and all(title for title, _ in parsed)
    return time.perf_counter() - started


def threads_and_processes(urls: list[str]) -> float:
    started = time.perf_counter()
    results = urlfleet.fetch_all(urls, jobs=32, per_host=8, parse=parse_result, parse_jobs=2)
    assert all(r.ok and r.parse_error is None and r.parsed[0] for r in results)
    return time.perf_counter() - started


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--urls", type=int, default=400)
    options.add_argument("--paragraphs", type=int, default=400)
    options.add_argument("--repeat", type=int, default=3)
    args = options.parse_args()
    with LoopbackProcess(ServerSpec(hosts=8, latency=0.05)) as server:

        def urls() -> list[str]:
            token = uuid.uuid4().hex[:8]
            return [f"{server.base_urls[i % 8]}/page/{token}/{i}?paragraphs={args.paragraphs}"
                    for i in range(args.urls)]  # fmt: skip

        threads_and_processes(urls()[:16])  # start the process pool once, outside the timing
        timings: dict[str, list[float]] = {"threads only": [], "threads + processes": []}
        for _ in range(args.repeat):
            timings["threads only"].append(threads_only(urls()))
            timings["threads + processes"].append(threads_and_processes(urls()))
        cpu = server.cpu_seconds()
    medians = {name: statistics.median(values) for name, values in timings.items()}
    print({name: [round(v, 2) for v in values] for name, values in timings.items()})
    print(f"{args.urls} pages of {args.paragraphs} paragraphs, 8 hosts, 50 ms latency, "
          f"32 threads; median of {args.repeat}")  # fmt: skip
    for name, median in medians.items():
        print(f"  {name:22} {median:6.2f} s   ({args.urls / median:6.1f} pages/s)")
    ratio = medians["threads only"] / medians["threads + processes"]
    print(f"  threads + processes is {ratio:.2f}x the speed of threads only")
    print(f"  (loopback server used {cpu:.1f} s of CPU over all runs)")


if __name__ == "__main__":
    main()
