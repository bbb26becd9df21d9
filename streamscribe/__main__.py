from streamscribe.cli import main

raise SystemExit(main())
