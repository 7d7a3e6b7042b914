import sys

from sdk_build.cli import main

sys.exit(main())
