"""Lazy re-exports (PEP 562) for sub-packages whose modules import heavy libraries."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence


def lazy_exports(package: str, exports: Mapping[str, Sequence[str]], namespace: dict):
    """Return ``(__all__, __getattr__, __dir__)`` re-exporting ``exports`` of ``package``.

    Args:
        package: The package's ``__name__``.
        exports: ``{submodule: names}``; a name is imported from its submodule on first access.
        namespace: The package's ``globals()``, where a resolved name is cached.
    """
    where = {name: module for module, names in exports.items() for name in names}
    names = sorted(where)

    def __getattr__(name: str):
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(names))

    return names, __getattr__, __dir__
