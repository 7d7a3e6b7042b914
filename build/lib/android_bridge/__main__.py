"""`python -m android_bridge ...`: see `android_bridge.cli`."""

from android_bridge.cli import main

raise SystemExit(main())
