try:
    from urlfleet.cli import main
except KeyboardInterrupt:  # Ctrl-C while still starting up: nothing to keep, no traceback
    # 130 is urlfleet.cli.EXIT_INTERRUPTED, spelled out: importing it is what was interrupted.
    raise SystemExit(130) from None

raise SystemExit(main())
