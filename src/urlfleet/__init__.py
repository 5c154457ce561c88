"""urlfleet: fetch a list of URLs fast and politely.

>>> import urlfleet
>>> for result in urlfleet.fetch(urls, jobs=64, per_host=4): ...

The pipeline, stage by stage, one package each (``run.runner.Run`` ties them together):

1. ``read/``        URL lists, rows and sitemaps in (``sources``); what a previous run did
                    (``resume``, ``revalidation``)
2. ``schedule/``    per-host queues that hand out a URL only when its host can take it
                    (``frontier``), each URL on its way as a ``job``
   ``politeness/``  every per-host rule the frontier asks: identity, slots, gaps, pauses,
                    cut-off, robots.txt, pace, and the same rules between dask shards
3. ``fetching/``    one request per step, never raising (``fetcher``), finished by its job's
                    kind (``kinds``), written through the politeness gate (``gate``,
                    ``adapter``); retries by tenacity (``retrying``)
4. ``record/``      Result and its JSON line or CSV row; bodies saved to disk
5. ``report/``      the run's numbers in words, JSON and one HTML page

``run/`` runs them: joblib threads taking jobs from the frontier, the progress bar, the
parse stage. Around them: ``urls`` (URL helpers every stage uses), ``config`` (FetchConfig),
``api`` (this front door), ``cli/`` (the command line), ``distributed/`` (dask.distributed),
``loopback/`` (the test server, standing alone). The fetch stage is ``fetching/``, not
``fetch/``: ``urlfleet.fetch`` is the library's function, which a subpackage would shadow.
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
