from workfleet_producer.cli import main

raise SystemExit(main())
