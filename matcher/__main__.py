"""``python -m matcher``: the command line (see :mod:`matcher.cli`)."""

from .cli import main

if __name__ == "__main__":  # guarded: process pools (spawn) re-import the main module in their workers
    raise SystemExit(main())
