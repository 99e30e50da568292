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
        try:
            text, origin = path.read_text(encoding="utf-8"), str(path)
        except UnicodeDecodeError:
            raise ConfigError(f"{path} is not a YAML config (not UTF-8 text); pass a .yaml file "
                              "or a shipped config name") from None
    else:
        resource = resources.files("amalib") / "configs" / f"{name_or_path}.yaml"
        if not resource.is_file():
            raise ConfigError(
                f"unknown config {str(name_or_path)!r}; shipped configs: "
                f"{', '.join(available_configs())} (or pass a path to a .yaml file)"
            )
        text, origin = resource.read_text(), f"amalib/configs/{name_or_path}.yaml"
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{origin} is not valid YAML ({_yaml_problem(err)}); fix the file or "
                          "start from a shipped config (amalib/configs)") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{origin} must hold a mapping at the top level")
    return data, origin


def _yaml_problem(err: Exception) -> str:
    """The short reason of a YAML parse error, with its line when known."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"line {mark.line + 1}: {problem}" if mark is not None else problem


def _merge(base: dict, override: Mapping, where: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if key not in out:
            valid = ", ".join(sorted(out))
            raise ConfigError(f"unknown config key {where + key!r}; valid keys here: {valid}")
        if isinstance(out[key], dict) and isinstance(value, Mapping):
            out[key] = _merge(out[key], value, f"{where}{key}.")
        else:
            out[key] = _coerce(copy.deepcopy(value), out[key], where + key)
    return out


def _resolve(name_or_path: str | Path, seen: tuple[str, ...] = ()) -> dict:
    data, origin = _read(name_or_path)
    if origin in seen:
        raise ConfigError(f"config inheritance loops: {' -> '.join((*seen, origin))}")
    base = data.pop("base", None)
    if base is None:
        return data
    return _merge(_resolve(base, (*seen, origin)), data)


#: Integer settings that must be at least 1 (a size, a batch, or a period something is done at).
_POSITIVE = {"data.batch_size", "data.eval_batch_size", "data.eval_resize", "data.eval_crop",
             "data.cluster_resize", "data.cluster_crop", "model.patch_size", "model.img_size",
             "model.out_dim", "model.hidden_dim", "model.bottleneck_dim", "eval.every",
             "train.log_every", "train.checkpoint_every", "pretrain.batch_size"}


def _describe(value) -> str:
    return f"{value!r} ({type(value).__name__})" if isinstance(value, str) else repr(value)


def _coerce(value, current, dotted: str):
    """``value`` checked against the type of the setting it replaces (``current``).

    A float setting takes a number (YAML reads ``5e-4``, without a dot, as a string); an integer
    setting an integer (0 or more; 1 or more for sizes and periods); a switch ``true`` or
    ``false``; a text setting text (a number is taken as its text, e.g. a folder ``2024``); a
    list a list. ``null`` is accepted where the setting is not an integer or a switch. A setting
    whose current value is ``null`` takes anything.
    """
    if current is None:
        return value
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{dotted} must be true or false, got {_describe(value)}")
        return value
    if value is None:
        if isinstance(current, int):
            raise ConfigError(f"{dotted} must be an integer, got null")
        return value
    if isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{dotted} must be a number, got {_describe(value)}")
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{dotted} must be a number, got {value!r}") from None
    if isinstance(current, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{dotted} must be an integer, got {_describe(value)}")
        low = 1 if dotted in _POSITIVE else 0
        if value < low:
            raise ConfigError(f"{dotted} must be an integer >= {low}, got {value}")
        return value
    if isinstance(current, str):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{dotted} must be text, got {_describe(value)}")
        return value
    if isinstance(current, list) and not isinstance(value, list):
        raise ConfigError(f"{dotted} must be a list, e.g. {dotted}=[{', '.join(map(str, current))}]"
                          f", got {_describe(value)}")
    return value


def apply_overrides(config: dict, overrides: Iterable[str]) -> dict:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a copy of ``config``."""
    if isinstance(overrides, (str, bytes)):
        raise ConfigError(f"overrides must be a list of 'key.sub=value' strings, e.g. "
                          f"['train.epochs=3'], got the string {overrides!r}")
    out = copy.deepcopy(config)
    for item in overrides:
        if not isinstance(item, str):
            raise ConfigError(f"override {item!r} must be a string 'key.sub=value'")
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
                try:
                    parsed = yaml.safe_load(raw)
                except yaml.YAMLError as err:
                    raise ConfigError(f"--set {item}: {raw!r} is not a YAML value "
                                      f"({_yaml_problem(err)}); quote text, write lists as "
                                      "[1, 2]") from None
                value = _coerce(parsed, node[key], dotted)
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
