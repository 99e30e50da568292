"""``python -m amalib`` (and ``torchrun -m amalib``) runs the command line."""

import sys

from amalib.cli import main

sys.exit(main())
