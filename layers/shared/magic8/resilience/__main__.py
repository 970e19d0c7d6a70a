from magic8.resilience.cli import main

raise SystemExit(main())
