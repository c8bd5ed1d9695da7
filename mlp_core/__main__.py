"""``python -m mlp_core``: the command line (see ``mlp_core.cli``)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
