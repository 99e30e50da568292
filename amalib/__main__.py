"""``python -m amalib`` (and ``torchrun -m amalib``) runs the command line."""

import sys

from amalib.cli import main

# Guarded: a spawned worker (the generator's pool) re-imports this module as ``__mp_main__``
# and must not run the command line again.
if __name__ == "__main__":
    sys.exit(main())
