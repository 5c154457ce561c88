"""The import graph of urlfleet: no cycles, and each layer imports only what it may.

Every import counts, wherever it is (module level, inside a function, under TYPE_CHECKING):
a lazy import still ties two modules together, it only moves the cost.
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Collection
from pathlib import Path

import pytest

from tests.import_rules import FETCHING, NOT_FOR_A_PLAIN_FETCH, within

ROOT = Path(__file__).parents[2] / "src" / "urlfleet"  # this checkout's, whatever is installed
# Cycles accepted for now; the test fails while a listed one no longer exists, so this list
# cannot go stale. Keep it empty.
KNOWN_CYCLES: list[set[str]] = []


def name_of(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(node: ast.AST, package: str) -> list[str]:
    """What an import statement names, absolute (``from . import x`` in ``urlfleet.cli`` is
    ``urlfleet.cli.x``; ``from a import b`` is ``a.b``, a module or a name in ``a``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom) or node.module == "__future__":
        return []
    base = node.module or ""
    if node.level:  # relative: from the package, one level up per extra dot
        up = package.rsplit(".", node.level - 1)[0]
        base = f"{up}.{base}" if base else up
    return [f"{base}.{alias.name}" for alias in node.names]


def module_of(name: str, files: Collection[str]) -> str:
    """The urlfleet module an imported name lies in: the name itself, else the nearest
    module or package above it. Other names stay as they are (``xml.parsers.expat``)."""
    if name.split(".")[0] != "urlfleet":
        return name
    while name not in files:
        name = name.rpartition(".")[0]
    return name


@functools.cache
def graph() -> dict[str, set[str]]:
    """Module -> the urlfleet modules it imports (a package is its ``__init__``)."""
    files = {name_of(path): path for path in ROOT.rglob("*.py")}

    edges: dict[str, set[str]] = {module: set() for module in files}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for target in imported(node, package):
                found = module_of(target, files)
                if found.split(".")[0] == "urlfleet" and found != module:
                    edges[module].add(found)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components of more than one module (or a self-import)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = {stack.pop()}
            while node not in component:
                component.add(stack.pop())
            if len(component) > 1 or node in edges[node]:
                found.append(component)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def path_through(component: set[str], edges: dict[str, set[str]]) -> str:
    """The shortest cycle from the component's first module, as ``a -> b -> a``."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    for node in queue:
        for nxt in sorted(edges[node] & component):
            if nxt == start:
                return " -> ".join([*paths[node], start])
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"not a cycle: {component}")


def imports_of(target: str) -> set[tuple[str, str]]:
    return {(m, t) for m, ts in graph().items() for t in ts if within(t, target)}


def test_the_graph_sees_every_kind_of_import() -> None:
    edges = graph()
    assert "urlfleet.cli.session" in edges["urlfleet.cli.fetch"]  # module level
    assert "urlfleet.distributed" in edges["urlfleet.api"]  # inside a function
    assert "urlfleet.record.records" in edges["urlfleet.config"]  # under TYPE_CHECKING


def test_no_import_cycles_but_the_known_ones() -> None:
    edges = graph()
    found = cycles(edges)
    new = [path_through(c, edges) for c in found if c not in KNOWN_CYCLES]
    assert not new, "import cycles: " + "; ".join(new)
    gone = [c for c in KNOWN_CYCLES if c not in found]
    assert not gone, f"no longer cycles, remove from KNOWN_CYCLES: {gone}"


def test_only_the_entry_points_import_the_cli() -> None:
    users = {m for m, _ in imports_of("urlfleet.cli")}
    assert all(within(m, "urlfleet.cli", "urlfleet.__main__") for m in users), sorted(users)


def test_the_loopback_server_stands_alone() -> None:
    loopback = [m for m in graph() if within(m, "urlfleet.loopback")]
    wrong = {(m, t) for m in loopback for t in graph()[m] if not within(t, "urlfleet.loopback")}
    assert not wrong, sorted(wrong)
    users = {m for m, _ in imports_of("urlfleet.loopback")}
    assert all(within(m, "urlfleet.cli", "urlfleet.loopback") for m in users), sorted(users)


def test_only_the_api_and_the_cli_reach_for_dask() -> None:
    users = {m for m, _ in imports_of("urlfleet.distributed")}
    allowed = ("urlfleet.api", "urlfleet.cli", "urlfleet.distributed")
    assert all(within(m, *allowed) for m in users), sorted(users)


def test_the_politeness_rules_depend_on_no_fetch_code() -> None:
    politeness = [m for m in graph() if within(m, "urlfleet.politeness")]
    allowed = (
        "urlfleet.politeness", "urlfleet.config", "urlfleet.schedule.job", "urlfleet.errors",
        "urlfleet.urls",  # pure helpers on URL strings
    )  # fmt: skip
    wrong = {(m, t) for m in politeness for t in graph()[m] if not within(t, *allowed)}
    assert not wrong, sorted(wrong)


def every_import(module: str) -> set[str]:
    """Every name ``module`` imports (urlfleet's or not), wherever the import is."""
    path = next(p for p in ROOT.rglob("*.py") if name_of(p) == module)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {name for node in ast.walk(tree) for name in imported(node, package)}


def test_the_rules_across_shards_need_no_cluster_and_no_fetch_code() -> None:
    allowed = ("urlfleet.config", "urlfleet.urls", "urlfleet.errors", "urlfleet.politeness")
    names = every_import("urlfleet.politeness.shards")
    wrong = {n for n in names if n.split(".")[0] not in sys.stdlib_module_names}
    wrong -= {n for n in wrong if within(n, *allowed)}
    assert not wrong, sorted(wrong)


def test_the_cluster_decides_no_politeness_and_its_plan_talks_to_no_cluster() -> None:
    # From the politeness rules, distributed takes host identity, what a host's state says
    # (HostMemory) and the rules across shards; a Politeness of its own would be a second
    # authority. Its plan is pure: no dask, none of the modules that talk to the cluster.
    modules = [m for m in graph() if within(m, "urlfleet.distributed")]
    taken = {n for m in modules for n in every_import(m) if within(n, "urlfleet.politeness")}
    allowed = {"urlfleet.politeness.host_key", "urlfleet.politeness.HostMemory"}
    assert {n for n in taken if not within(n, "urlfleet.politeness.shards")} <= allowed
    plan = every_import("urlfleet.distributed.plan")
    assert not {n for n in plan if within(n, "dask", "distributed", "urlfleet.distributed")}


def test_fetch_code_never_reaches_for_the_frontier() -> None:
    users = {m for m, _ in imports_of("urlfleet.schedule.frontier")}
    assert users <= {"urlfleet.run.runner"}, sorted(users)


def test_the_fetching_package_imports_only_what_a_step_needs() -> None:
    # read.sitemaps: a sitemap job's answer is parsed where the job ends (fetching.kinds).
    allowed = ("urlfleet.fetching", "urlfleet.config", "urlfleet.errors", "urlfleet.urls",
               "urlfleet.politeness", "urlfleet.schedule.job", "urlfleet.read.items",
               "urlfleet.read.sitemaps", "urlfleet.record")  # fmt: skip
    fetching = [m for m in graph() if within(m, "urlfleet.fetching")]
    wrong = {(m, t) for m in fetching for t in graph()[m] if not within(t, *allowed)}
    assert not wrong, sorted(wrong)


# What each stage may import from urlfleet besides itself: the data flows one way, read ->
# schedule -> fetch -> record -> report, and run ties them together. (politeness, fetching
# and distributed have rules of their own above.)
MAY_IMPORT = {
    "urlfleet.urls": (),  # the stdlib and requests only
    # record.records only under TYPE_CHECKING (retry_if's argument); mediatypes is pure.
    "urlfleet.config": ("urlfleet._version", "urlfleet.fetching.mediatypes",
                        "urlfleet.record.records"),
    # resume and revalidation read a previous run's records back (JSON Lines or CSV).
    "urlfleet.read": ("urlfleet.errors", "urlfleet.urls", "urlfleet.config",
                      "urlfleet.record.records", "urlfleet.record.csvout"),
    "urlfleet.schedule": ("urlfleet.politeness", "urlfleet.read.items", "urlfleet.read.sitemaps",
                          "urlfleet.config", "urlfleet.errors"),
    # csvout reads a CSV records file back with the reader's bounded lines.
    "urlfleet.record": ("urlfleet.errors", "urlfleet.urls", "urlfleet.config",
                        "urlfleet.read.lines"),
    # recordfile builds a report from a records file, read as resume reads it.
    "urlfleet.report": ("urlfleet.config", "urlfleet.errors", "urlfleet.record",
                        "urlfleet.read.resume"),
    "urlfleet.run": ("urlfleet.config", "urlfleet.errors", "urlfleet.urls", "urlfleet.read",
                     "urlfleet.schedule", "urlfleet.politeness", "urlfleet.fetching",
                     "urlfleet.record", "urlfleet.report"),
}  # fmt: skip


@pytest.mark.parametrize("stage", sorted(MAY_IMPORT))
def test_each_stage_imports_only_what_comes_before_it(stage: str) -> None:
    allowed = (stage, *MAY_IMPORT[stage])
    inside = [m for m in graph() if within(m, stage)]
    wrong = {(m, t) for m in inside for t in graph()[m] if not within(t, *allowed)}
    assert not wrong, sorted(wrong)


def test_every_stage_has_a_rule() -> None:
    top = {".".join(m.split(".")[:2]) for m in graph() if m.count(".") >= 1}
    ruled = {*MAY_IMPORT, "urlfleet.politeness", "urlfleet.fetching", "urlfleet.distributed",
             "urlfleet.cli", "urlfleet.loopback", "urlfleet.api", "urlfleet.errors",
             "urlfleet._version", "urlfleet.__main__"}  # fmt: skip
    assert top <= ruled, sorted(top - ruled)


def test_only_the_entry_modules_sit_outside_a_stage_package() -> None:
    flat = {path.stem for path in ROOT.glob("*.py")} - {"__init__"}
    assert flat == {"__main__", "api", "config", "errors", "urls", "_version"}, sorted(flat)


# -- what loads at import time ----------------------------------------------------------------


@functools.cache
def eager_imports() -> dict[str, set[str]]:
    """Module -> every module it imports when it is imported (urlfleet's or not): the
    module-level imports, not those in functions or under ``if TYPE_CHECKING:``."""
    files = {name_of(path): path for path in ROOT.rglob("*.py")}
    found: dict[str, set[str]] = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        found[module] = set()
        pending = list(ast.parse(path.read_text(encoding="utf-8")).body)
        while pending:
            node = pending.pop()
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                pending += node.orelse
            elif isinstance(node, (ast.If, ast.Try)):  # e.g. a version check: both ways
                pending += [*node.body, *node.orelse, *getattr(node, "handlers", [])]
                pending += getattr(node, "finalbody", [])
            elif isinstance(node, ast.ExceptHandler):
                pending += node.body
            else:
                found[module] |= {module_of(name, files) for name in imported(node, package)}
    return found


def loaded_by(*roots: str) -> set[str]:
    """What importing ``roots`` loads, as far as urlfleet's own imports go: urlfleet's
    modules (each with the packages above it) and the other modules they import."""
    edges = eager_imports()
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        module = pending.pop()
        parts = module.split(".")
        for name in (".".join(parts[:i]) for i in range(1, len(parts) + 1)):
            if name not in seen:
                seen.add(name)
                pending.extend(edges.get(name, ()))
    return seen


def test_the_walk_sees_what_loads_at_import_time() -> None:
    edges = eager_imports()
    assert "urlfleet.cli.session" in edges["urlfleet.cli.fetch"]  # module level
    assert "urlfleet.loopback" not in edges["urlfleet.cli.demo"]  # inside a function
    assert "urlfleet.record.records" not in edges["urlfleet.config"]  # under TYPE_CHECKING
    assert "tomllib" not in edges["urlfleet.cli.configread"]  # only when a file is read
    assert {"requests", "joblib"} <= loaded_by("urlfleet.cli.fetch")
    assert "protego" not in edges["urlfleet.politeness.robots"]  # only to parse a robots.txt


def test_a_plain_fetch_imports_only_what_it_uses() -> None:
    # `urlfleet fetch` loads the command line, then its handler's module.
    wrong = [m for m in loaded_by("urlfleet.cli", "urlfleet.cli.fetch")
             if within(m, *NOT_FOR_A_PLAIN_FETCH)]  # fmt: skip
    assert not wrong, sorted(wrong)


def test_help_version_and_import_urlfleet_load_no_fetching() -> None:
    wrong = [m for m in loaded_by("urlfleet", "urlfleet.cli") if within(m, *FETCHING)]
    assert not wrong, sorted(wrong)


def test_the_local_processes_need_no_dask() -> None:
    # --processes runs on the core install: the shard logic and the local engine import
    # neither dask nor the modules that talk to a dask cluster (those import dask lazily).
    dask_side = ("dask", "distributed", "urlfleet.distributed.client",
                 "urlfleet.distributed.daskcluster", "urlfleet.distributed.claims")  # fmt: skip
    shared = ("local", "dispatch", "worker", "cluster", "plan")
    for module in (f"urlfleet.distributed.{name}" for name in shared):
        assert not {n for n in every_import(module) if within(n, *dask_side)}, module
    # What --processes asks before a run begins is cheap: the standard library only.
    cores = every_import("urlfleet.run.cores")
    assert all(name.split(".")[0] in sys.stdlib_module_names for name in cores), cores
