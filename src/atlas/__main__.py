"""``python -m atlas``: the same command as the ``atlas`` console script."""

from __future__ import annotations

import sys

from atlas.cli import main

if __name__ == "__main__":
    sys.exit(main())
