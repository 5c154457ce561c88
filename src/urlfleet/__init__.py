"""urlfleet: fetch a list of URLs fast and politely.

>>> import urlfleet
>>> for result in urlfleet.fetch(urls, jobs=64, per_host=4): ...
"""

from urlfleet._version import __version__
from urlfleet.api import fetch, fetch_all, make_config
from urlfleet.config import FetchConfig, HostLimits
from urlfleet.errors import InputError, UrlfleetError
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
    "UrlfleetError",
    "__version__",
    "fetch",
    "fetch_all",
    "make_config",
]
