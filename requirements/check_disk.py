"""Fail early, with the fix, when a new virtual environment will not fit on the disk.

The Makefile runs this with the system Python before it creates ``.venv``: the pinned stack of
``lock-cpu.txt`` takes about 6.4 GB (torch's CUDA build and its NVIDIA libraries are 5.5 GB of
it). Without the check, pip fails a minute into the install with ``OSError: [Errno 28] No space
left on device`` and leaves a half-filled environment behind.

Usage: ``python requirements/check_disk.py VENV_DIR [--need-gb GB]``. Exits 0 when the
filesystem that will hold ``VENV_DIR`` has at least ``GB`` gigabytes free, 1 with a message
otherwise. Standard library only: it runs before any environment exists.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

# 6.4 GB for the environment plus headroom for pip's unpacking and the demo's first run.
DEFAULT_NEED_GB = 7.0


def existing_parent(path: Path) -> Path:
    """The nearest directory at or above ``path`` that exists (the venv itself may not yet)."""
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


def check(venv: Path, need_gb: float) -> str | None:
    """``None`` when ``need_gb`` GB are free where ``venv`` will live, else the error message."""
    where = existing_parent(venv)
    free_gb = shutil.disk_usage(where).free / 1e9
    if free_gb >= need_gb:
        return None
    return (
        f"Not enough disk space for the virtual environment {venv}: it needs about {need_gb:.1f} GB "
        f"(the pinned PyTorch stack of requirements/lock-cpu.txt), and the filesystem holding "
        f"{where} has {free_gb:.1f} GB free.\n"
        f"Free some space there, or put the environment on a larger disk with "
        f"`make VENV=/path/on/a/larger/disk/amalib-venv test` (or `demo`)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("venv", type=Path, help="the virtual environment's directory")
    parser.add_argument("--need-gb", type=float, default=DEFAULT_NEED_GB,
                        help=f"free space required, in GB (default {DEFAULT_NEED_GB})")
    args = parser.parse_args(argv)
    message = check(args.venv, args.need_gb)
    if message is not None:
        print(message, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
