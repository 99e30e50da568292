"""Configs: one YAML per benchmark in ``amalib/configs``, overridable from the command line.

A config may start with ``base: <name>`` to inherit another config and override part of it.
Overrides use dotted keys (``train.epochs=3``, ``loss.schedule.use_ma=false``); values are parsed
as YAML. A key that does not exist is an error listing the valid keys at that level, so a typo
never silently trains with a default.

Three steps take a config from a file (or a checkpoint) to a run, all in this module:

* :func:`upgrade` gives a config written before a key existed that key's default, the value
  that reproduces what such a run did (``model.stem: patch``, ``loss.dino.center:
  per_domain``, ...; the table :data:`UPGRADE_DEFAULTS`). It runs wherever an old config enters:
  :func:`load_config`, the :class:`~amalib.train.Trainer`, and every reader of a checkpoint's
  stored config. Code after it indexes those keys directly.
* :func:`validate` checks a config once, before anything is built, and returns it as typed
  sections (:class:`Config`); a bad value or combination is a one-line :class:`ConfigError`
  that names the key and the fix. The Trainer calls it at construction. Checks that need the
  filesystem or built objects (the data root, the benchmark's files, the pretrained file, a
  batch larger than the training set, model settings the network cannot be built with) stay
  where those are.
* :func:`eval_transform_from_config` builds the evaluation (or clustering) transform a config
  describes, the one recipe the trainer, ``amalib eval``, the gallery index, the sketch query
  and the notebooks share.

Configs stay nested dicts for every caller (``cfg["train"]["epochs"]``): they are what YAML
gives, what ``--set`` edits and what a checkpoint stores. The typed sections are plain
dataclasses rather than OmegaConf structured configs: they need no new dependency, they keep
the dict the single representation (OmegaConf would bring its own container type, interpolation
and override grammar, and its own error messages, where the messages here are part of the CLI's
contract), and they serve only validation, defaults and documentation.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from amalib.errors import AmalibError

__all__ = ["ConfigError", "available_configs", "load_config", "apply_overrides", "save_config",
           "UPGRADE_DEFAULTS", "upgrade", "validate", "Config", "eval_transform_spec",
           "eval_transform_from_config", "ensure_generated_data"]


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
    """Load a shipped config by name (``"mini"``, ``"sketchy21"``, …) or a YAML file by path,
    overridden and upgraded (:func:`upgrade`: a run's old ``config.yaml`` gets today's keys).

    Args:
        name_or_path: Config name or path.
        overrides: Dotted ``key=value`` strings applied on top.

    Returns:
        The resolved config as a nested dict.

    Raises:
        ConfigError: unknown name, missing file, unknown key.
    """
    # upgrade after the overrides: a --set that replaces a whole section (data.photo_crops=
    # {...}) gets the defaults of the keys it leaves out, as the Trainer would give them.
    return upgrade(apply_overrides(_resolve(name_or_path), overrides))


def save_config(config: Mapping, path: str | Path) -> Path:
    """Write the resolved config next to a run's checkpoints."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return path


# ------------------------------------------------------------------------------------ upgrade

#: The default of every key added after run configs (and the checkpoints that store them) were
#: first written: the value that does what such a run did. :func:`upgrade` sets each one a
#: config lacks. A key is set only where its section is there (a config without ``loss.dino``
#: stays without it), except in sections added later themselves (:data:`_ADDED_SECTIONS`).
UPGRADE_DEFAULTS: tuple[tuple[str, Any], ...] = (
    # cluster and test images were resized bicubically (bilinear: the release's)
    ("data.resize_interpolation", "bicubic"),
    # each domain's own photometric recipe (dino: the release's for sketches too) and a blur
    # radius scaled by crop size / 224 (absolute: DINO's); MultiCropTransform's defaults
    ("data.sketch_crops.photometric", "sketch"),
    ("data.sketch_crops.blur_radius", "scaled_to_crop"),
    ("data.photo_crops.photometric", "dino"),
    ("data.photo_crops.blur_radius", "scaled_to_crop"),
    # the generated mini-benchmark's photos were busy before the mini config chose calm: a config
    # (or a saved run's) without the key keeps its busy tree; generate_mini_benchmark's own
    # default is calm, the mini config's
    ("data.generate.photo_style", "busy"),
    # a patch-projection ViT (cnn: the convolutional stem)
    ("model.stem", "patch"),
    # local crops resampled the position embedding with timm's antialiased bicubic
    ("model.pos_embed_interpolation", "timm"),
    # both networks started from a full DINO checkpoint's teacher
    ("model.init_student_from", "teacher"),
    # no weight decay on biases and norms; cosine learning rate per optimiser step
    ("train.weight_decay_exempt", "biases_and_norms"),
    ("train.lr_decay_every", "step"),
    # no head warm-up, no gradient clipping, no torch.compile, every step of an epoch
    ("train.freeze_backbone_epochs", 0),
    ("train.clip_grad", None),
    ("train.compile", False),
    ("train.max_steps_per_epoch", None),
    # float32 on the CPU whatever train.amp says
    ("train.cpu_amp", False),
    # one DINO centre per domain
    ("loss.dino.center", "per_domain"),
    # spherical k-means of normalised features
    ("loss.cluster.space", "normalised_spherical"),
    # L_MA on the first global crop's rows only
    ("loss.mutual_alignment.crops", "first_global"),
    # docs/method.md's linear CC ramp
    ("loss.schedule.cc_ramp_reading", "linear"),
    # `amalib pretrain` trained plain DINO
    ("pretrain.objective", "dino"),
)

#: Sections that did not exist in the first configs: :func:`upgrade` adds them when missing.
_ADDED_SECTIONS = frozenset({"pretrain"})


def upgrade(cfg: Mapping) -> dict:
    """A copy of ``cfg`` with the default of every key it lacks from :data:`UPGRADE_DEFAULTS`.

    For configs written before a key existed: a run config's ``config.yaml``, a checkpoint's
    stored config, a config a caller built by hand. A current config comes back unchanged
    (equal, as a new dict); a value already there, ``null`` included, is never replaced.
    """
    out = copy.deepcopy(dict(cfg)) if isinstance(cfg, Mapping) else copy.deepcopy(cfg)
    if not isinstance(out, dict):
        return out
    for dotted, default in UPGRADE_DEFAULTS:
        *parents, key = dotted.split(".")
        node = out
        for depth, name in enumerate(parents):
            if name not in node and depth == 0 and name in _ADDED_SECTIONS:
                node[name] = {}
            node = node.get(name)
            if not isinstance(node, dict):
                break
        else:
            node.setdefault(key, copy.deepcopy(default))
    return out


# ------------------------------------------------------------------------- typed sections

#: ``train.amp`` values (autocast dtype on CUDA; ``none``/``false``: float32).
AMP_MODES = ("bf16", "fp16", "none", "false")
#: ``loss.dino.center``: one DINO centre per domain (amalib) or one shared (the release).
DINO_CENTERS = ("per_domain", "shared")
#: Readings of the CC ramp (``loss.schedule.cc_ramp_reading``); see amalib.train.objective.
CC_RAMPS = ("linear", "release_line")


@dataclass(frozen=True, kw_only=True)
class CropsConfig:
    """``data.sketch_crops`` / ``data.photo_crops``: the multi-crop recipe of one domain
    (:class:`amalib.data.transforms.MultiCropTransform`)."""

    global_size: int
    local_size: int
    n_global: int = 2
    n_local: int
    global_scale: list[float] = field(default_factory=lambda: [0.6, 1.0])
    local_scale: list[float] = field(default_factory=lambda: [0.2, 0.6])
    #: dino (colour jitter, grayscale, solarize) or sketch (affine, stroke thickening).
    photometric: str | None = None
    #: scaled_to_crop (radius x size/224) or absolute (DINO's 0.1-2.0 px).
    blur_radius: str = "scaled_to_crop"


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """``data``: where the benchmark is, the batches and the crops and evaluation transforms."""

    root: str | None = None
    #: Parameters of amalib.data.synthetic.generate_mini_benchmark (the embedded benchmark).
    generate: dict | None = None
    batch_size: int
    num_workers: int
    sketch_crops: CropsConfig
    photo_crops: CropsConfig
    cluster_resize: int
    cluster_crop: int
    eval_resize: int
    eval_crop: int
    #: bicubic (amalib) or bilinear (the release's, torchvision's default).
    resize_interpolation: str
    eval_batch_size: int


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """``model``: the ViT, its DINO head and where its starting weights come from."""

    arch: str
    patch_size: int
    #: patch (DINO's patch projection) or cnn (convolutional stem).
    stem: str
    #: timm (antialiased bicubic) or dino (DINO's interpolate_pos_encoding).
    pos_embed_interpolation: str
    img_size: int
    out_dim: int
    hidden_dim: int
    bottleneck_dim: int
    drop_path_rate: float
    norm_last_layer: bool
    #: A file, ``package:...``, ``hub:<timm tag>`` or none (random init).
    pretrained: str | None = None
    #: teacher (both networks from a full checkpoint's teacher) or student (the release).
    init_student_from: str


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """``train``: the optimiser, its schedules and the loop's periods."""

    epochs: int
    #: sgd or adamw.
    optimizer: str
    lr: float
    min_lr: float
    warmup_epochs: int
    momentum: float | None = None  # SGD only
    weight_decay: float
    #: biases_and_norms (DINO's groups) or none (decay everything, the release).
    weight_decay_exempt: str
    #: step (cosine per optimiser step) or epoch (once per epoch, the release).
    lr_decay_every: str
    teacher_momentum: float
    teacher_momentum_final: float
    clip_grad: float | None
    freeze_backbone_epochs: int
    seed: int
    amp: Any = None  # one of AMP_MODES (YAML may read false as a switch)
    #: Autocast on the CPU too, when ``amp`` is bf16 (off: the CPU trains in float32).
    cpu_amp: bool = False
    checkpoint_every: int
    log_every: int
    max_steps_per_epoch: int | None
    compile: bool


@dataclass(frozen=True, kw_only=True)
class DINOLossConfig:
    """``loss.dino``: :class:`amalib.losses.dino.DINOLoss`'s arguments and its centre."""

    teacher_temp: float = 0.04
    warmup_teacher_temp: float = 0.04
    warmup_teacher_temp_epochs: int = 0
    student_temp: float = 0.1
    center_momentum: float = 0.9
    #: per_domain or shared (the release).
    center: str


@dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    """``loss.cluster``: the k-means granularities and the cluster contrastive loss."""

    granularities: list[int]
    temperature: float
    prototype_temperature: float
    confidence_threshold: float
    n_iter: int
    n_redo: int
    max_points_per_centroid: int
    #: normalised_spherical or raw_euclidean (the release).
    space: str


@dataclass(frozen=True, kw_only=True)
class MutualAlignmentConfig:
    """``loss.mutual_alignment``."""

    temperature: float = 0.01
    #: first_global or both_global (the release's rows).
    crops: str


@dataclass(frozen=True, kw_only=True)
class SimilarityGuidanceConfig:
    """``loss.similarity_guidance``."""

    sigma: float = 1.0
    delta: float = 1.0
    topk: int = 10


@dataclass(frozen=True)
class ScheduleConfig:
    """``loss.schedule``: the weights and start epochs of AMA's loss terms.

    :class:`amalib.train.objective.ObjectiveSchedule` is this section with the per-epoch
    behaviour (its docstring explains each field); the checks below are the section's.
    """

    sd_sketch_weight: float = 2.0
    sd_photo_weight: float = 1.0
    cc_weight: float = 0.5
    cc_start_epoch: int = 20
    cc_ramp_end_epoch: int = 100
    ma_weight: float = 0.1
    ma_start_epoch: int = 40
    sg_weight: float = 0.02
    sg_start_epoch: int = 40
    use_sd: bool = True
    use_cc: bool = True
    use_ma: bool = True
    use_sg: bool = True
    cc_ramp_reading: str = "linear"

    def __post_init__(self) -> None:
        for name in ("sd_sketch_weight", "sd_photo_weight", "cc_weight", "ma_weight", "sg_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("cc_start_epoch", "cc_ramp_end_epoch", "ma_start_epoch", "sg_start_epoch"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.cc_ramp_reading not in CC_RAMPS:
            raise ValueError(
                f"cc_ramp_reading must be one of {CC_RAMPS}, got {self.cc_ramp_reading!r}"
            )
        if self.cc_ramp_end_epoch < self.cc_start_epoch:
            raise ValueError(
                f"cc_ramp_end_epoch ({self.cc_ramp_end_epoch}) must be >= cc_start_epoch "
                f"({self.cc_start_epoch})"
            )

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None):
        """Build from a config dict whose keys are the constructor's arguments.

        Raises:
            ValueError: on an unknown key, listing the valid ones.
        """
        config = dict(config or {})
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(config) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown objective key(s) {unknown}; valid keys are: {', '.join(valid)}"
            )
        return cls(**config)


@dataclass(frozen=True, kw_only=True)
class LossConfig:
    """``loss``: AMA's loss terms and their schedule."""

    dino: DINOLossConfig
    cluster: ClusterConfig
    mutual_alignment: MutualAlignmentConfig
    similarity_guidance: SimilarityGuidanceConfig
    schedule: ScheduleConfig


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    """``eval``: how often the unseen classes are evaluated, and which AP."""

    every: int
    ap: str


@dataclass(frozen=True, kw_only=True)
class PretrainConfig:
    """``pretrain``: how ``amalib pretrain`` makes a starting backbone (AMA never reads it)."""

    #: dino (the train section's schedule) or supervised (the keys below).
    objective: str
    steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    crop_scale: list[float] | None = None
    checkpoint_every: int | None = None


@dataclass(frozen=True, kw_only=True)
class Config:
    """A whole config, typed: what :func:`validate` returns."""

    benchmark: str | None
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    loss: LossConfig
    eval: EvalConfig
    pretrain: PretrainConfig | None = None


def _section(cls, data, where: str):
    """``cls`` built from the mapping ``data`` at ``where``: its known keys (others are left to
    the code that reads them), nested sections typed, a missing key without a default an error."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a section of keys, got {_describe(data)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            value = data[f.name]
            if isinstance(f.type, str) and f.type in _NESTED:
                value = _section(_NESTED[f.type], value, f"{where}.{f.name}")
            kwargs[f.name] = value
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"config key {where}.{f.name} is missing; add it (every shipped "
                              "config in amalib/configs has it)")
    return cls(**kwargs)


_NESTED = {"CropsConfig": CropsConfig, "DINOLossConfig": DINOLossConfig,
           "ClusterConfig": ClusterConfig, "MutualAlignmentConfig": MutualAlignmentConfig,
           "SimilarityGuidanceConfig": SimilarityGuidanceConfig}


def _one_of(dotted: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{dotted} must be {' or '.join(map(repr, choices))}, got {value!r}")


def validate(cfg: Mapping, *, mode: str = "ama") -> Config:
    """Check an (upgraded) config before anything is built; its typed sections.

    Args:
        cfg: The config as nested dicts, after :func:`upgrade`.
        mode: ``"ama"`` or ``"pretrain"`` (plain DINO: the schedule's sketch and alignment
            terms are switched off before the schedule is checked, as the Trainer does).

    Raises:
        ConfigError: one line naming the key and the fix, at the first bad setting.
    """
    from amalib.clustering import CLUSTER_SPACES
    from amalib.data.benchmarks import get_benchmark
    from amalib.data.transforms import MultiCropTransform
    from amalib.losses.mutual_alignment import MA_CROPS
    from amalib.models.vit import VIT_PRESETS

    if not isinstance(cfg, Mapping):
        raise ConfigError(f"a config is a mapping of sections, got {_describe(cfg)}")
    for name in ("data", "model", "train", "loss", "eval"):
        if name not in cfg:
            raise ConfigError(f"config section {name!r} is missing; add it (every shipped "
                              "config in amalib/configs has it)")
    if "benchmark" not in cfg:
        raise ConfigError("config key 'benchmark' is missing; add it (every shipped config in "
                          "amalib/configs has it)")
    tcfg = cfg["train"]
    amp = tcfg.get("amp") if isinstance(tcfg, Mapping) else None
    if str(amp).lower() not in AMP_MODES:
        raise ConfigError(f"train.amp must be one of {sorted(AMP_MODES)}, got {tcfg['amp']!r}")
    cpu_amp = tcfg.get("cpu_amp", False)
    if not isinstance(cpu_amp, bool):
        raise ConfigError(f"train.cpu_amp must be true or false, got {cpu_amp!r}")
    if cpu_amp and str(amp).lower() != "bf16":
        raise ConfigError(f"train.cpu_amp: true autocasts to bf16 on the CPU, but train.amp is "
                          f"{amp!r}; set train.amp=bf16 or train.cpu_amp=false")
    seed = tcfg["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(f"train.seed must be an integer from 0 to {2**32 - 1}, got {seed!r}")
    loss = cfg["loss"]
    sched = dict(loss["schedule"])
    if mode == "pretrain":
        sched.update(sd_sketch_weight=0.0, use_cc=False, use_ma=False, use_sg=False)
    try:
        schedule = ScheduleConfig.from_config(sched)
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"loss.schedule: {err}") from err
    dcfg = cfg["data"]
    try:
        get_benchmark(str(cfg["benchmark"]))
    except KeyError as err:
        raise ConfigError(err.args[0]) from err
    if dcfg.get("root") is None:
        raise ConfigError(
            "data.root is not set: pass --set data.root=/path/to/datasets (the folder that "
            "holds the benchmark's list files)"
        )
    for d in ("sketch", "photo"):
        try:
            MultiCropTransform(domain=d, **dict(dcfg[f"{d}_crops"]))
        except (TypeError, ValueError) as err:
            raise ConfigError(f"data.{d}_crops: {err}") from None
    eval_transform_from_config(cfg, "eval")
    data = _section(DataConfig, dcfg, "data")
    model = _section(ModelConfig, cfg["model"], "model")
    _one_of("model.pos_embed_interpolation", model.pos_embed_interpolation, ("timm", "dino"))
    if model.arch not in VIT_PRESETS:
        raise ConfigError(f"model.arch: unknown ViT architecture {model.arch!r}; choose one "
                          f"of {', '.join(sorted(VIT_PRESETS))} (e.g. --set "
                          "model.arch=vit_small)")
    _one_of("model.init_student_from", model.init_student_from, ("teacher", "student"))
    pretrained = None if model.pretrained is None else str(model.pretrained)
    if pretrained is not None and pretrained.startswith("hub:") and model.stem != "patch":
        raise ConfigError(
            f"model.pretrained={pretrained!r} holds a patch-projection ViT, but "
            f"model.stem is {model.stem!r}; set model.stem=patch or pretrain your own"
        )
    losses = LossConfig(
        dino=_section(DINOLossConfig, loss["dino"], "loss.dino"),
        cluster=_section(ClusterConfig, loss["cluster"], "loss.cluster"),
        mutual_alignment=_section(MutualAlignmentConfig, loss["mutual_alignment"],
                                  "loss.mutual_alignment"),
        similarity_guidance=_section(SimilarityGuidanceConfig, loss["similarity_guidance"],
                                     "loss.similarity_guidance"),
        schedule=schedule,
    )
    if losses.dino.center not in DINO_CENTERS:
        raise ConfigError(f"loss.dino.center must be 'per_domain' or 'shared', got "
                          f"{losses.dino.center!r}")
    if losses.cluster.space not in CLUSTER_SPACES:
        raise ConfigError(f"loss.cluster.space must be one of {CLUSTER_SPACES}, got "
                          f"{losses.cluster.space!r}")
    if losses.mutual_alignment.crops not in MA_CROPS:
        raise ConfigError(f"loss.mutual_alignment.crops must be one of {MA_CROPS}, "
                          f"got {losses.mutual_alignment.crops!r}")
    train = _section(TrainConfig, tcfg, "train")
    if train.weight_decay_exempt not in ("biases_and_norms", "none"):
        raise ConfigError("train.weight_decay_exempt must be 'biases_and_norms' or 'none', "
                          f"got {train.weight_decay_exempt!r}")
    _one_of("train.lr_decay_every", train.lr_decay_every, ("step", "epoch"))
    kind = str(train.optimizer).lower()
    if kind not in ("sgd", "adamw"):
        raise ConfigError(f"train.optimizer must be 'sgd' or 'adamw', got {kind!r}")
    pretrain = cfg.get("pretrain")
    return Config(
        benchmark=cfg["benchmark"], data=data, model=model, train=train, loss=losses,
        eval=_section(EvalConfig, cfg["eval"], "eval"),
        pretrain=None if pretrain is None else _section(PretrainConfig, pretrain, "pretrain"),
    )


# ------------------------------------------------------------------- evaluation transform

def eval_transform_spec(cfg: Mapping, kind: str = "eval") -> dict:
    """``{"resize", "crop", "interpolation"}`` of the transform ``kind`` of an (upgraded)
    config: ``"eval"`` (test images: ``data.eval_resize``, ``data.eval_crop``) or ``"cluster"``
    (training images for k-means: ``data.cluster_resize``, ``data.cluster_crop``), both with
    ``data.resize_interpolation``. A gallery index records it as its transform."""
    if kind not in ("eval", "cluster"):
        raise ValueError(f"kind must be 'eval' or 'cluster', got {kind!r}")
    dcfg = cfg["data"]
    return {"resize": dcfg[f"{kind}_resize"], "crop": dcfg[f"{kind}_crop"],
            "interpolation": dcfg["resize_interpolation"]}


def eval_transform_from_config(cfg: Mapping, kind: str = "eval"):
    """The evaluation (``kind="eval"``) or clustering (``kind="cluster"``) transform of an
    (upgraded) config: :func:`amalib.data.transforms.eval_transform` of
    :func:`eval_transform_spec`.

    Raises:
        ConfigError: ``data.resize_interpolation`` is not a known interpolation.
    """
    from amalib.data.transforms import eval_transform

    spec = eval_transform_spec(cfg, kind)
    try:
        return eval_transform(spec["resize"], spec["crop"], interpolation=spec["interpolation"])
    except ValueError as err:
        raise ConfigError(f"data.resize_interpolation: {err}") from err


def ensure_generated_data(data_cfg: dict) -> Path:
    """``data.root`` as a Path, after generating the embedded benchmark there (rank 0, every rank
    waiting) when the config has a ``data.generate`` section; a bad generator parameter is a
    :class:`ConfigError`."""
    root = Path(data_cfg["root"])
    if data_cfg.get("generate"):
        from amalib.data.synthetic import check_mini_benchmark_params, ensure_mini_benchmark

        try:
            params = check_mini_benchmark_params(**data_cfg["generate"])
        except (TypeError, ValueError) as err:  # a bad data.generate parameter
            raise ConfigError(f"data.generate: {err}") from err
        from amalib.distributed import run_on_main_process

        run_on_main_process(ensure_mini_benchmark, root, **params)
    return root
