"""Configs: one YAML per benchmark in ``amalib/configs``, overridable from the command line.

A config may start with ``base: <name>`` to inherit another config and override part of it.
Overrides use dotted keys (``train.epochs=3``, ``loss.schedule.use_ma=false``); values are parsed
as YAML. A key that does not exist is an error listing the valid keys at that level, so a typo
never silently trains with a default.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path

import yaml

from amalib.errors import AmalibError

__all__ = ["ConfigError", "available_configs", "load_config", "apply_overrides", "save_config"]


class ConfigError(AmalibError, ValueError):
    """A user mistake in a config name, file, key, value or in a combination of options."""


def available_configs() -> list[str]:
    """Names of the configs shipped with amalib."""
    folder = resources.files("amalib") / "configs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _read(name_or_path: str | Path) -> tuple[dict, str]:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.exists():
            raise ConfigError(f"config file not found: {path}")
        text, origin = path.read_text(), str(path)
    else:
        resource = resources.files("amalib") / "configs" / f"{name_or_path}.yaml"
        if not resource.is_file():
            raise ConfigError(
                f"unknown config {str(name_or_path)!r}; shipped configs: "
                f"{', '.join(available_configs())} (or pass a path to a .yaml file)"
            )
        text, origin = resource.read_text(), f"amalib/configs/{name_or_path}.yaml"
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin} must hold a mapping at the top level")
    return data, origin


def _merge(base: dict, override: Mapping, where: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if key not in out:
            valid = ", ".join(sorted(out))
            raise ConfigError(f"unknown config key {where + key!r}; valid keys here: {valid}")
        if isinstance(out[key], dict) and isinstance(value, Mapping):
            out[key] = _merge(out[key], value, f"{where}{key}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


def _resolve(name_or_path: str | Path, seen: tuple[str, ...] = ()) -> dict:
    data, origin = _read(name_or_path)
    if origin in seen:
        raise ConfigError(f"config inheritance loops: {' -> '.join((*seen, origin))}")
    base = data.pop("base", None)
    if base is None:
        return data
    return _merge(_resolve(base, (*seen, origin)), data)


def _coerce(value, current, dotted: str):
    """Give a float setting a float: YAML reads ``5e-4`` (no dot) as a string."""
    if isinstance(current, float) and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{dotted} must be a number, got {value!r}") from None
    return value


def apply_overrides(config: dict, overrides: Iterable[str]) -> dict:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a copy of ``config``."""
    out = copy.deepcopy(config)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        dotted, raw = item.split("=", 1)
        keys = dotted.strip().split(".")
        node = out
        for depth, key in enumerate(keys):
            if not isinstance(node, dict) or key not in node:
                where = ".".join(keys[:depth]) or "the top level"
                valid = ", ".join(sorted(node)) if isinstance(node, dict) else "(not a mapping)"
                raise ConfigError(
                    f"unknown config key {dotted!r}: {key!r} is not in {where}; valid keys: {valid}"
                )
            if depth == len(keys) - 1:
                value = _coerce(yaml.safe_load(raw), node[key], dotted)
                if isinstance(node[key], dict) and not isinstance(value, dict):
                    raise ConfigError(f"{dotted} is a section; set one of its keys instead")
                node[key] = value
            else:
                node = node[key]
    return out


def load_config(name_or_path: str | Path = "mini", overrides: Iterable[str] = ()) -> dict:
    """Load a shipped config by name (``"mini"``, ``"sketchy21"``, …) or a YAML file by path.

    Args:
        name_or_path: Config name or path.
        overrides: Dotted ``key=value`` strings applied on top.

    Returns:
        The resolved config as a nested dict.

    Raises:
        ConfigError: unknown name, missing file, unknown key.
    """
    return apply_overrides(_resolve(name_or_path), overrides)


def save_config(config: Mapping, path: str | Path) -> Path:
    """Write the resolved config next to a run's checkpoints."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return path
