"""``python -m loihi_slayer``: the ``loihi-slayer`` command line."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
