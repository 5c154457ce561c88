"""``python -m urlfleet.loopback``: see :func:`urlfleet.loopback.main`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
