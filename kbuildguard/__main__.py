from kbuildguard.cli import main

raise SystemExit(main())
