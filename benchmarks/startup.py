"""How long ``urlfleet fetch`` of one URL takes from process start to exit, against a floor.

    python benchmarks/startup.py [--repeat R]

A loopback server runs in a process of its own; then, in interleaved turns (so drift in the
machine's load hits all alike), each a fresh child process and a fresh URL:

* ``floor``:    ``python -c`` importing urlfleet's dependencies (requests, joblib, tenacity,
                tqdm, protego) and doing one ``requests.get``: what any fetcher built on them
                pays before and for its first request;
* ``urlfleet``: ``python -m urlfleet fetch ONE_URL_LIST -o OUT.jsonl``;
* ``requests``: ``python -c`` with a bare ``import requests`` and one ``requests.get``;
* ``version``:  ``python -m urlfleet --version``, and ``help``: ``python -m urlfleet --help``.

Prints the median wall time of each and the ratio urlfleet / floor; the target is <= 1.2 and
the exit status is 1 when it is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"  # so a checkout works without `pip install -e .`
sys.path.insert(0, str(SRC))

from urlfleet.loopback import LoopbackProcess, ServerSpec  # noqa: E402

TARGET = 1.2

FLOOR = """\
import sys
import joblib, protego, requests, tenacity, tqdm
if requests.get(sys.argv[1], timeout=30).status_code != 200:
    raise SystemExit("floor: not 200")
"""

REQUESTS_ONLY = """\
import sys
import requests
if requests.get(sys.argv[1], timeout=30).status_code != 200:
    raise SystemExit("requests: not 200")
"""


def _timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv[1:4]} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return wall


def _fetched_ok(out: Path) -> bool:
    records = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return len(records) == 1 and records[0]["ok"] is True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="turns of each (default 15)")
    args = parser.parse_args()

    python = sys.executable
    walls: dict[str, list[float]] = {
        name: [] for name in ("floor", "urlfleet", "requests", "version", "help")
    }
    with (
        tempfile.TemporaryDirectory() as tmp,
        LoopbackProcess(ServerSpec(hosts=1, latency=0.0)) as server,
    ):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
        # Bytecode cached as an installed package has it, in a directory of this run's own
        # (the warm-up turn fills it), even where PYTHONDONTWRITEBYTECODE is set: else every
        # run would compile urlfleet's source and measure the compiler.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        base = server.base_urls[0]
        url_list, out = Path(tmp) / "one.txt", Path(tmp) / "out.jsonl"

        def fresh() -> str:
            return f"{base}/page/{uuid.uuid4().hex}"

        # One untimed turn of each fills the bytecode cache and the OS's file cache.
        _timed([python, "-c", FLOOR, fresh()], env)
        url_list.write_text(fresh() + "\n")
        _timed([python, "-m", "urlfleet", "fetch", str(url_list), "-o", str(out)], env)
        _timed([python, "-c", REQUESTS_ONLY, fresh()], env)
        _timed([python, "-m", "urlfleet", "--version"], env)
        _timed([python, "-m", "urlfleet", "--help"], env)
        for _ in range(args.repeat):
            walls["floor"].append(_timed([python, "-c", FLOOR, fresh()], env))
            url_list.write_text(fresh() + "\n")
            out.unlink(missing_ok=True)
            fetch = [python, "-m", "urlfleet", "fetch", str(url_list), "-o", str(out)]
            walls["urlfleet"].append(_timed(fetch, env))
            if not _fetched_ok(out):
                raise SystemExit(f"urlfleet did not fetch the URL: {out.read_text()!r}")
            walls["requests"].append(_timed([python, "-c", REQUESTS_ONLY, fresh()], env))
            walls["version"].append(_timed([python, "-m", "urlfleet", "--version"], env))
            walls["help"].append(_timed([python, "-m", "urlfleet", "--help"], env))

    medians = {name: statistics.median(values) for name, values in walls.items()}
    print(f"startup: one URL from process start to exit, median of {args.repeat} turns")
    about = {
        "floor": "python -c: import requests, joblib, tenacity, tqdm, protego; one get",
        "urlfleet": "python -m urlfleet fetch ONE_URL_LIST -o OUT.jsonl",
        "requests": "python -c: import requests; one get",
        "version": "python -m urlfleet --version",
        "help": "python -m urlfleet --help",
    }
    for name, median in medians.items():
        spread = f"{min(walls[name]):.3f}-{max(walls[name]):.3f}"
        print(f"{name:9} {median:6.3f} s  (range {spread} s)  {about[name]}")
    ratio = medians["urlfleet"] / medians["floor"]
    verdict = "met" if ratio <= TARGET else "MISSED"
    print(f"urlfleet / floor = {ratio:.2f} (target <= {TARGET}): {verdict}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
