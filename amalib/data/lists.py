"""Reading file lists and class maps: ``relative/path label`` lines, ``class name id`` lines.

The format is described in :mod:`amalib.data.benchmarks`; this module only parses it, so that
the benchmark registry and the mini-benchmark generator (which the registry imports) can both
read lists without importing each other.
"""

from __future__ import annotations

import re
from pathlib import Path

from amalib.errors import InputError

__all__ = ["read_file_list", "read_class_names"]

_LIST_FIX = ("; fix the file, or write the lists again with `amalib prepare <benchmark> --root "
             "<data root> --build-from <download>`")
_LINE = re.compile(r"^(?P<path>.*\S)\s+(?P<label>[-+]?\d+)\s*$")


def read_file_list(path) -> list[tuple[str, int]]:
    """Read a ``relative/path label`` file list.

    The path is everything before the last run of whitespace, so paths may contain spaces
    (``png_ready/hot air balloon/1.png 14``). Blank lines are ignored; ``\\r\\n`` endings are fine.

    Args:
        path: The list file.

    Returns:
        ``[(relative_path, label), ...]`` in file order.

    Raises:
        FileNotFoundError: The list file does not exist (the message names it).
        ValueError: A line is not ``path label`` with an integer label >= 0; the message names
            the file, the line number and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"file list not found: {path} (expected lines 'relative/path label', see "
            "amalib.data.benchmarks)"
        )
    out = []
    with path.open(encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line:
                continue
            m = _LINE.match(line)
            if m is None or int(m["label"]) < 0:
                raise InputError(
                    f"{path}:{lineno}: expected 'relative/path label' with an integer label >= 0, "
                    f"got {line!r}" + _LIST_FIX
                )
            out.append((m["path"], int(m["label"])))
    return out


def read_class_names(path) -> list[str]:
    """Read a class map (``cname_cid.txt``): lines ``class name id``, name may contain spaces.

    Returns:
        The class names ordered by id, so ``names[label]`` is the class of ``label``.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: A malformed line, a repeated id or name, or ids that are not ``0..n-1``.
    """
    path = Path(path)
    entries = read_file_list(path) if path.is_file() else None
    if entries is None:
        raise FileNotFoundError(f"class map not found: {path} (expected lines 'class name id')")
    by_id: dict[int, str] = {}
    for name, cid in entries:
        if cid in by_id:
            raise InputError(f"{path}: id {cid} used by both {by_id[cid]!r} and {name!r}"
                             + _LIST_FIX)
        by_id[cid] = name
    if sorted(by_id) != list(range(len(by_id))):
        raise InputError(f"{path}: class ids must be 0..{len(by_id) - 1}, got {sorted(by_id)}"
                         + _LIST_FIX)
    names = [by_id[i] for i in range(len(by_id))]
    if len(set(names)) != len(names):
        raise InputError(f"{path}: a class name appears twice" + _LIST_FIX)
    return names
