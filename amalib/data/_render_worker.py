"""A rendering worker of the mini-benchmark generator, run as ``python -m amalib.data._render_worker``.

:func:`amalib.data.synthetic.generate_mini_benchmark` starts these as plain subprocesses rather
than through a ``multiprocessing`` pool: a spawned pool worker re-imports the caller's main
module, which hangs a script without an ``if __name__ == "__main__":`` guard (every worker runs
the script again) and fails from ``python -c``, ``python -`` (stdin) and some notebooks. This
module imports only the generator (numpy, PIL), reads its chunks as JSON from stdin and prints
the number of images it wrote.
"""

import json
import sys


def main() -> int:
    from amalib.data.synthetic.writer import _render_chunk

    chunks = json.load(sys.stdin)
    print(sum(_render_chunk(tuple(chunk)) for chunk in chunks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
