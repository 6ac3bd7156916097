"""``python -m ichprog``: the same command line as the ``ichprog`` console script."""

from ichprog.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
