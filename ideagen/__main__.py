from ideagen.cli import main

raise SystemExit(main())
