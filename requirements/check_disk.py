"""Fail early, with the fix, when a new virtual environment will not fit on the disk.

The Makefile runs this with the system Python whenever it installs ``.venv`` from scratch (no
stamp file yet, which includes a retry after a failed install): the pinned stack of
``lock-cpu.txt`` takes about 6.8 GB (6.4 GiB; torch's CUDA build and its NVIDIA libraries are most
of it), and where the wheels come from a registry pip keeps about 3 GB of downloads in its cache
and temporary folder meanwhile. Without the check, pip fails a minute or more into the install
with ``OSError: [Errno 28] No space left on device`` and leaves a half-filled environment behind.

Usage: ``python requirements/check_disk.py VENV_DIR [--need-gb GB]``. Exits 0 when the
filesystem that will hold ``VENV_DIR`` has at least ``GB`` gigabytes free, 1 with a message
otherwise. Standard library only: it runs before any environment exists.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

# 6.8 GB (decimal, as reported here) for the environment, plus pip's downloads while it installs.
DEFAULT_NEED_GB = 10.0


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
        f"Not enough disk space for the virtual environment {venv}: installing it needs about "
        f"{need_gb:.1f} GB (the pinned PyTorch stack of requirements/lock-cpu.txt and pip's "
        f"downloads), and the filesystem holding {where} has {free_gb:.1f} GB free.\n"
        f"Free some space there, or put the environment on a larger disk with "
        f"`make VENV=/path/on/a/larger/disk/amalib-venv test` (or `demo`; pip's downloads go to "
        f"PIP_CACHE_DIR and TMPDIR). If you know it fits, `make VENV_NEED_GB=0 ...` skips this."
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
