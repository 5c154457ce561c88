from urlfleet.cli import main

raise SystemExit(main())
