"""urlfleet: fetch a list of URLs fast and politely.

>>> import urlfleet
>>> for result in urlfleet.fetch(urls, jobs=64, per_host=4): ...

The pipeline, stage by stage (``runner.Run`` ties them together in a dozen lines):

1. read:      ``sources`` (URL lists, validation), ``resume`` (what is already done),
              ``revalidation`` (a previous run's validators)
2. schedule:  ``frontier`` (per-host queues, fed by a reader thread) asking ``politeness``
              (every per-host rule: identity, slots, gaps, pauses, cut-off, robots.txt, pace)
3. fetch:     ``fetcher`` (one request per step, never raises), ``transport`` (the gate at the
              write), ``retrying`` (tenacity), ``saving`` (bodies to disk)
4. record:    ``records`` (Result, JSON lines), ``csvout`` (CSV rows)
5. report:    ``report``, ``hoststats``

Around them: ``api`` (this front door), ``cli`` (the command line), ``distributed`` (dask),
``loopback`` (the test server, standing alone).
"""

from urlfleet._version import __version__
from urlfleet.api import fetch, fetch_all, make_config
from urlfleet.config import FetchConfig, HostLimits
from urlfleet.errors import InputError, UrlfleetError
from urlfleet.items import UrlRequest
from urlfleet.records import Result
from urlfleet.report import Report
from urlfleet.sources import UrlReader

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
