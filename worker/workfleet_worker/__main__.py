from workfleet_worker.cli import main

raise SystemExit(main())
