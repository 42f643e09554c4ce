"""``python -m sim2real``: the CLI, also the entry point for ``torchrun -m sim2real``."""

from sim2real.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
