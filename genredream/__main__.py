"""``python -m genredream``: the same as the ``genredream`` command."""

import sys

from genredream.engine.cli import main

if __name__ == "__main__":
    sys.exit(main())
