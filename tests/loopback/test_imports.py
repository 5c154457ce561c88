"""The loopback package stands alone: standard library only, nothing else from urlfleet."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import urlfleet.loopback

PACKAGE = "urlfleet.loopback"
SOURCES = sorted(Path(urlfleet.loopback.__file__).parent.rglob("*.py"))


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, anywhere in it (functions and TYPE_CHECKING blocks
    included), relative imports resolved against the package."""
    package_parts = PACKAGE.split(".")
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from . / from .. : relative to the package
                base = package_parts[: max(0, len(package_parts) - (node.level - 1))]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((node.lineno, module))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Name, ast.Attribute))
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr)
            in ("__import__", "import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def test_the_package_has_its_modules() -> None:
    names = {path.name for path in SOURCES}
    assert names >= {
        "__init__.py", "__main__.py", "spec.py", "http11.py", "routes.py",
        "protocol.py", "server.py", "process.py", "cli.py",
    }  # fmt: skip


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_imports_only_the_standard_library_and_itself(path: Path) -> None:
    modules = imported_modules(path)
    assert modules, "no imports found: is the walker broken?"
    for line, module in modules:
        top = module.split(".")[0]
        if top == "urlfleet":
            assert module == PACKAGE or module.startswith(PACKAGE + "."), (
                f"{path.name}:{line} imports {module} from outside {PACKAGE}"
            )
        else:
            assert top in sys.stdlib_module_names or top == "__future__", (
                f"{path.name}:{line} imports {module}, which is not in the standard library"
            )


def test_the_walker_sees_what_it_must_refuse(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from . import spec\n"
        "from .. import config\n"
        "import requests\n"
        "def late():\n"
        "    from urlfleet.hosts import host_key\n"
        "    import importlib; importlib.import_module('urlfleet.cli')\n"
    )
    assert [m for _, m in imported_modules(sample)] == [
        "urlfleet.loopback",
        "urlfleet",
        "requests",
        "urlfleet.hosts",
        "importlib",
        "urlfleet.cli",
    ]
