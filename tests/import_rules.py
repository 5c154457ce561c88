"""What a command may load, shared by the static check of urlfleet's module-level imports
(tests/unit/test_layering.py) and the check of a real process's modules
(tests/integration/test_startup_imports.py). Each name covers its submodules."""

# Loaded by a plain fetch only if something went wrong: each is for an option not given.
NOT_FOR_A_PLAIN_FETCH = frozenset({
    "matplotlib", "dask", "distributed",  # plots and clusters
    "protego",  # robots.txt, with --robots
    "tomllib", "tomli",  # urlfleet.toml, when there is one
    "xml.parsers.expat",  # sitemaps
    "urlfleet.loopback", "urlfleet.distributed", "urlfleet.report.htmlreport",
    "urlfleet.report.timeline", "urlfleet.report.svgcharts", "urlfleet.report.recordfile",
    "urlfleet.cli.plot", "urlfleet.cli.sweep",
    "urlfleet.cli.configread",  # urlfleet.toml and --print-config
    "urlfleet.read.resume", "urlfleet.read.revalidation",  # --resume, --revalidate
    "urlfleet.record.csvout",  # --out-format csv
    "urlfleet.record.saving",  # --save-dir
})  # fmt: skip

# The fetching machinery and everything below it: --version, --help and `import urlfleet`
# need none of it.
FETCHING = frozenset({
    "requests", "urllib3", "joblib", "numpy", "tenacity", "tqdm", "protego",
    "urlfleet.api", "urlfleet.run.runner", "urlfleet.fetching.fetcher",
    "urlfleet.fetching.adapter", "urlfleet.fetching.deadlines", "urlfleet.fetching.environment",
    "urlfleet.fetching.gate",
    "urlfleet.politeness", "urlfleet.cli.fetch", "urlfleet.cli.session",
})  # fmt: skip


def within(module: str, *prefixes: str) -> bool:
    """Whether ``module`` is one of ``prefixes`` or inside one."""
    return any(module == p or module.startswith(p + ".") for p in prefixes)
