from magic8_dev.resilience.cli import main

raise SystemExit(main())
