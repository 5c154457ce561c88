"""Test-only: resolve the names in ``URLFLEET_TEST_HOSTS`` (JSON ``{name: address}``) to
loopback addresses in this process, through a patched ``socket.getaddrinfo``.

A child gets it by having this directory first on ``PYTHONPATH`` (``tests.realparts.child_env``
arranges both). It is inert without the variable, and then runs the ``sitecustomize`` it
shadows, if any, so the interpreter's own start-up hook still happens.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys


def _run_shadowed() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None or spec.origin == __file__:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


if os.environ.get("URLFLEET_TEST_HOSTS"):
    import _urlfleet_hostmap

    _urlfleet_hostmap.install_from_env()

_run_shadowed()
