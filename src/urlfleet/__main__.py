try:
    from urlfleet.cli import main
except KeyboardInterrupt:  # Ctrl-C while still starting up: nothing to keep, no traceback
    raise SystemExit(130) from None

raise SystemExit(main())
