"""``python -m ichprog.cli``: the ``ichprog`` command line."""

import sys

from ichprog.cli import main

if __name__ == "__main__":
    sys.exit(main())
