from emoforge.cli import main

raise SystemExit(main())
