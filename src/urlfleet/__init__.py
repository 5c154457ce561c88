"""urlfleet: fetch a list of URLs fast and politely.

>>> import urlfleet
>>> for result in urlfleet.fetch(urls, jobs=64, per_host=4): ...

The pipeline, stage by stage (``runner.Run`` ties them together in a dozen lines):

1. read:      ``sources`` (URL lists, validation), ``resume`` (what is already done),
              ``revalidation`` (a previous run's validators)
2. schedule:  ``frontier`` (per-host queues, fed by a reader thread) asking ``politeness``
              (every per-host rule: identity, slots, gaps, pauses, cut-off, robots.txt, pace)
3. fetch:     ``fetcher`` (one request per step, never raises), ``gate`` (the gate at the
              write), ``adapter`` (gated pools), ``retrying`` (tenacity), ``saving`` (bodies)
4. record:    ``records`` (Result, JSON lines), ``csvout`` (CSV rows)
5. report:    ``report``, ``hoststats``

Around them: ``api`` (this front door), ``cli`` (the command line), ``distributed`` (dask),
``loopback`` (the test server, standing alone).
"""

import typing as _typing

from urlfleet._version import __version__
from urlfleet.config import FetchConfig, HostLimits
from urlfleet.errors import InputError, UrlfleetError
from urlfleet.read.items import UrlRequest
from urlfleet.read.sources import UrlReader
from urlfleet.record.records import Result
from urlfleet.report.summary import Report

if _typing.TYPE_CHECKING:
    from urlfleet.api import fetch, fetch_all, make_config

__all__ = [
    "FetchConfig",
    "HostLimits",
    "InputError",
    "Report",
    "Result",
    "UrlReader",
    "UrlRequest",
    "UrlfleetError",
    "__version__",
    "fetch",
    "fetch_all",
    "make_config",
]


# The fetching machinery (requests, joblib, tenacity) loads on first use of these, so
# importing urlfleet, or running `urlfleet --version`, does not pay for it.
_FROM_API = ("fetch", "fetch_all", "make_config")


def __getattr__(name: str) -> object:
    if name in _FROM_API:
        from urlfleet import api

        value = getattr(api, name)
        globals()[name] = value  # found at once from now on
        return value
    raise AttributeError(f"module 'urlfleet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_FROM_API})
