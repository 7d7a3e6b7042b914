import sys

from gemma_edge.cli import main

sys.exit(main())
