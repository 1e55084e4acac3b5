"""`python -m genredream.engine.cli`: the same entry point as `genredream`."""
import sys

from genredream.engine.cli import main

sys.exit(main())
