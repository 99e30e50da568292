"""Configs: shipped files resolve, overrides apply, typos are errors with the valid keys."""

import re

import pytest

from amalib.config import ConfigError, apply_overrides, available_configs, load_config


def test_every_shipped_config_resolves():
    names = available_configs()
    assert {"mini", "sketchy21", "sketchy25", "tuberlin", "quickdraw"} <= set(names)
    for name in names:
        cfg = load_config(name)
        assert {"data", "model", "train", "loss", "eval"} <= set(cfg)
        assert "base" not in cfg


def test_benchmark_configs_inherit_the_release_recipe():
    cfg = load_config("sketchy21")
    assert cfg["benchmark"] == "sketchy21"
    assert cfg["model"]["arch"] == "vit_base" and cfg["model"]["out_dim"] == 65536
    assert cfg["train"]["optimizer"] == "sgd" and cfg["train"]["lr"] == 2.0e-4
    assert cfg["loss"]["cluster"]["granularities"] == [250, 500, 1000]
    assert cfg["loss"]["schedule"]["sd_sketch_weight"] == 2.0


def test_overrides_parse_yaml_values():
    cfg = load_config("mini", ["train.epochs=3", "loss.schedule.use_ma=false",
                               "loss.cluster.granularities=[5, 10]"])
    assert cfg["train"]["epochs"] == 3
    assert cfg["loss"]["schedule"]["use_ma"] is False
    assert cfg["loss"]["cluster"]["granularities"] == [5, 10]


def test_float_settings_accept_exponent_without_dot():
    cfg = load_config("mini", ["train.lr=5e-4", "train.min_lr=0"])
    assert cfg["train"]["lr"] == 5e-4 and isinstance(cfg["train"]["min_lr"], float)
    with pytest.raises(ConfigError, match="train.lr must be a number"):
        load_config("mini", ["train.lr=fast"])


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"'epoch' is not in train; valid keys: .*epochs"):
        load_config("mini", ["train.epoch=3"])
    with pytest.raises(ConfigError, match="key.sub=value"):
        apply_overrides({}, ["nonsense"])
    with pytest.raises(ConfigError, match="section"):
        load_config("mini", ["train=3"])


def test_unknown_config_name_lists_shipped_ones(tmp_path):
    with pytest.raises(ConfigError, match="shipped configs: .*mini"):
        load_config("sketchy99")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_a_user_file_may_inherit(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: mini\ntrain:\n  epochs: 1\n")
    cfg = load_config(path)
    assert cfg["train"]["epochs"] == 1 and cfg["benchmark"] == "mini"
    path.write_text("base: mini\ntrain:\n  epohcs: 1\n")
    with pytest.raises(ConfigError, match="train.epohcs"):
        load_config(path)


# ------------------------------------------------------------------------------- upgrade()

#: What a config written before each key existed means (the trainer's behaviour then).
DOCUMENTED_DEFAULTS = {
    "data.resize_interpolation": "bicubic",
    "data.sketch_crops.photometric": "sketch",
    "data.sketch_crops.blur_radius": "scaled_to_crop",
    "data.photo_crops.photometric": "dino",
    "data.photo_crops.blur_radius": "scaled_to_crop",
    "data.generate.photo_style": "busy",
    "model.stem": "patch",
    "model.pos_embed_interpolation": "timm",
    "model.init_student_from": "teacher",
    "train.weight_decay_exempt": "biases_and_norms",
    "train.lr_decay_every": "step",
    "train.freeze_backbone_epochs": 0,
    "train.clip_grad": None,
    "train.compile": False,
    "train.max_steps_per_epoch": None,
    "train.cpu_amp": False,
    "loss.dino.center": "per_domain",
    "loss.cluster.space": "normalised_spherical",
    "loss.mutual_alignment.crops": "first_global",
    "loss.schedule.cc_ramp_reading": "linear",
    "pretrain.objective": "dino",
}


def _node(cfg: dict, dotted: str) -> tuple[dict, str]:
    *parents, key = dotted.split(".")
    for name in parents:
        cfg = cfg[name]
    return cfg, key


def test_upgrade_table_is_the_documented_one():
    from amalib.config import UPGRADE_DEFAULTS

    assert dict(UPGRADE_DEFAULTS) == DOCUMENTED_DEFAULTS
    assert len(UPGRADE_DEFAULTS) == len(DOCUMENTED_DEFAULTS)  # no key twice


@pytest.mark.parametrize("dotted", sorted(DOCUMENTED_DEFAULTS))
def test_upgrade_gives_an_old_config_the_documented_default(dotted):
    from amalib.config import upgrade

    current = load_config("mini")
    old = load_config("mini")
    node, key = _node(old, dotted)
    del node[key]  # a config written before the key existed
    snapshot = repr(old)
    new = upgrade(old)
    node, key = _node(new, dotted)
    assert node[key] == DOCUMENTED_DEFAULTS[dotted]
    assert repr(old) == snapshot  # the argument is left alone
    # Everything else is as it was.
    node[key] = _node(current, dotted)[0][key]
    assert new == current


@pytest.mark.parametrize("name", available_configs())
def test_upgrade_leaves_a_current_config_unchanged(name):
    from amalib.config import upgrade

    cfg = load_config(name)
    new = upgrade(cfg)
    assert new == cfg and new is not cfg
    assert upgrade(new) == new  # idempotent


def test_upgrade_keeps_values_and_missing_sections():
    from amalib.config import upgrade

    cfg = load_config("release", ["train.clip_grad=null"])  # data.generate: null
    new = upgrade(cfg)
    assert new["train"]["clip_grad"] is None and new["data"]["generate"] is None
    assert upgrade({"model": {"arch": "vit_mini"}}) == {
        "model": {"arch": "vit_mini", "stem": "patch", "pos_embed_interpolation": "timm",
                  "init_student_from": "teacher"},
        "pretrain": {"objective": "dino"},  # the section itself was added later
    }
    assert upgrade({}) == {"pretrain": {"objective": "dino"}}
    assert upgrade({"pretrain": {"objective": "supervised"}}) == {
        "pretrain": {"objective": "supervised"}}


def test_load_config_upgrades_an_old_run_config_and_sections_replaced_by_overrides(tmp_path):
    import yaml

    cfg = load_config("mini")
    del cfg["model"]["stem"], cfg["loss"]["dino"]["center"], cfg["pretrain"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    old = load_config(path)
    assert old["model"]["stem"] == "patch" and old["loss"]["dino"]["center"] == "per_domain"
    assert old["pretrain"] == {"objective": "dino"}
    # An override never creates a key (a typo stays an error), even one upgrade would add.
    with pytest.raises(ConfigError, match=r"'stem' is not in model; valid keys"):
        load_config(path, ["model.stem=cnn"])
    crops = load_config("mini", ["data.photo_crops={global_size: 32, local_size: 16, "
                                 "n_local: 2}"])["data"]["photo_crops"]
    assert crops["photometric"] == "dino" and crops["blur_radius"] == "scaled_to_crop"


def test_checkpoint_readers_upgrade_the_stored_config(tmp_path):
    import torch

    from amalib.models import create_vit
    from amalib.retrieval.evaluate import load_trained_backbone

    cfg = load_config("mini", ["model.stem=patch", "model.arch=vit_micro", "model.img_size=32"])
    del cfg["model"]["stem"], cfg["data"]["resize_interpolation"]
    backbone = create_vit("vit_micro", patch_size=8, img_size=32, stem="patch")
    torch.save({"config": cfg, "mode": "ama", "epoch": 1, "step": 0,
                "teacher": {f"backbone.{k}": v for k, v in backbone.state_dict().items()}},
               tmp_path / "old.pth")
    _, stored = load_trained_backbone(tmp_path / "old.pth")
    assert stored["model"]["stem"] == "patch"
    assert stored["data"]["resize_interpolation"] == "bicubic"


# ------------------------------------------------------------------------------ validate()

def _valid(**values) -> dict:
    return load_config("mini", [f"{k}={v}" for k, v in values.items()])


VALIDATE_ERRORS = [
    ({"train.amp": "fp32"},
     r"^train\.amp must be one of \['bf16', 'false', 'fp16', 'none'\], got 'fp32'$"),
    ({"train.seed": 2**32}, r"^train\.seed must be an integer from 0 to 4294967295, got 4294967296$"),
    ({"loss.schedule.ma_weight": -1},
     r"^loss\.schedule: ma_weight must be >= 0, got -1\.0$"),
    ({"loss.schedule.cc_ramp_end_epoch": 0},
     r"^loss\.schedule: cc_ramp_end_epoch \(0\) must be >= cc_start_epoch \(1\)$"),
    ({"loss.schedule.cc_ramp_reading": "cubic"},
     r"^loss\.schedule: cc_ramp_reading must be one of \('linear', 'release_line'\), got 'cubic'$"),
    ({"benchmark": "sketchy99"}, r"^unknown benchmark 'sketchy99'"),
    ({"data.root": "null"},
     r"^data\.root is not set: pass --set data\.root=/path/to/datasets \(the folder that holds "
     r"the benchmark's list files\)$"),
    ({"data.sketch_crops.n_global": 0}, r"^data\.sketch_crops: need n_global >= 1"),
    ({"data.photo_crops.blur_radius": "huge"},
     r"^data\.photo_crops: blur_radius must be 'scaled_to_crop' or 'absolute', got 'huge'$"),
    ({"data.resize_interpolation": "nearest"},
     r"^data\.resize_interpolation: interpolation must be one of \('bicubic', 'bilinear'\), "
     r"got 'nearest'$"),
    ({"model.pos_embed_interpolation": "bilinear"},
     r"^model\.pos_embed_interpolation must be 'timm' or 'dino', got 'bilinear'$"),
    ({"model.arch": "vit_huge"},
     r"^model\.arch: unknown ViT architecture 'vit_huge'; choose one of .*vit_base.*"
     r"\(e\.g\. --set model\.arch=vit_small\)$"),
    ({"model.init_student_from": "both"},
     r"^model\.init_student_from must be 'teacher' or 'student', got 'both'$"),
    ({"model.pretrained": "hub:vit_tiny"},
     r"^model\.pretrained='hub:vit_tiny' holds a patch-projection ViT, but model\.stem is "
     r"'cnn'; set model\.stem=patch or pretrain your own$"),
    ({"loss.dino.center": "global"},
     r"^loss\.dino\.center must be 'per_domain' or 'shared', got 'global'$"),
    ({"loss.cluster.space": "cosine"},
     r"^loss\.cluster\.space must be one of \('normalised_spherical', 'raw_euclidean'\), "
     r"got 'cosine'$"),
    ({"loss.mutual_alignment.crops": "all"},
     r"^loss\.mutual_alignment\.crops must be one of \('first_global', 'both_global'\), "
     r"got 'all'$"),
    ({"train.weight_decay_exempt": "bias"},
     r"^train\.weight_decay_exempt must be 'biases_and_norms' or 'none', got 'bias'$"),
    ({"train.lr_decay_every": "batch"},
     r"^train\.lr_decay_every must be 'step' or 'epoch', got 'batch'$"),
    ({"train.optimizer": "Adam"}, r"^train\.optimizer must be 'sgd' or 'adamw', got 'adam'$"),
]


@pytest.mark.parametrize("values, message", VALIDATE_ERRORS, ids=[next(iter(v)) for v, _ in
                                                                   VALIDATE_ERRORS])
def test_validate_refuses_each_bad_setting_in_one_line(values, message):
    from amalib.config import validate

    cfg = _valid(**values)
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    assert re.search(message, str(info.value)), str(info.value)
    assert "\n" not in str(info.value)


def test_validate_refuses_unknown_schedule_keys_and_missing_keys():
    from amalib.config import validate

    cfg = _valid()
    cfg["loss"]["schedule"]["cc_wieght"] = 0.5  # a hand-written file without `base:`
    with pytest.raises(ConfigError, match=r"^loss\.schedule: unknown objective key\(s\) "
                                          r"\['cc_wieght'\]; valid keys are: sd_sketch_weight"):
        validate(cfg)
    cfg = _valid()
    del cfg["model"]["patch_size"]
    with pytest.raises(ConfigError, match=r"^config key model\.patch_size is missing; add it"):
        validate(cfg)
    cfg = _valid()
    del cfg["loss"]
    with pytest.raises(ConfigError, match=r"^config section 'loss' is missing"):
        validate(cfg)


def test_validate_in_pretrain_mode_ignores_the_switched_off_terms():
    from amalib.config import validate

    cfg = _valid(**{"loss.schedule.sd_sketch_weight": -1})
    with pytest.raises(ConfigError, match="sd_sketch_weight must be >= 0"):
        validate(cfg)
    validate(cfg, mode="pretrain")  # plain DINO sets it to 0, as the Trainer does


@pytest.mark.parametrize("name", available_configs())
def test_every_shipped_config_validates_into_typed_sections(name):
    from amalib.config import Config, validate

    cfg = load_config(name, ["data.root=/data", "benchmark=sketchy21"]
                      if load_config(name)["benchmark"] is None else ["data.root=/data"])
    typed = validate(cfg)
    assert isinstance(typed, Config)
    assert typed.model.arch == cfg["model"]["arch"]
    assert typed.train.epochs == cfg["train"]["epochs"]
    assert typed.data.photo_crops.global_size == cfg["data"]["photo_crops"]["global_size"]
    assert typed.loss.schedule.cc_weight == cfg["loss"]["schedule"]["cc_weight"]
    assert typed.loss.cluster.granularities == cfg["loss"]["cluster"]["granularities"]


def test_an_upgraded_old_config_validates():
    from amalib.config import upgrade, validate

    cfg = _valid()
    for dotted in DOCUMENTED_DEFAULTS:
        node, key = _node(cfg, dotted)
        del node[key]
    typed = validate(upgrade(cfg))
    assert (typed.model.stem, typed.loss.dino.center) == ("patch", "per_domain")


def test_the_objective_schedule_is_the_config_section():
    """One set of fields, defaults and checks for loss.schedule and ObjectiveSchedule."""
    import dataclasses

    from amalib.config import ScheduleConfig
    from amalib.train.objective import ObjectiveSchedule

    assert issubclass(ObjectiveSchedule, ScheduleConfig)
    assert dataclasses.fields(ObjectiveSchedule) == dataclasses.fields(ScheduleConfig)
    assert isinstance(ObjectiveSchedule.from_config({"cc_weight": 0.3}), ObjectiveSchedule)
    with pytest.raises(ValueError, match="cc_ramp_end_epoch"):
        ObjectiveSchedule(cc_start_epoch=5, cc_ramp_end_epoch=1)


# ---------------------------------------------------------------- eval_transform_from_config

@pytest.mark.parametrize("kind, size", [("eval", (48, 48)), ("cluster", (40, 36))])
def test_eval_transform_from_config(kind, size):
    from amalib.config import eval_transform_from_config, eval_transform_spec

    cfg = _valid(**{"data.cluster_resize": 40, "data.cluster_crop": 36,
                    "data.resize_interpolation": "bilinear"})
    assert eval_transform_spec(cfg, kind) == {"resize": size[0], "crop": size[1],
                                              "interpolation": "bilinear"}
    resize, crop = eval_transform_from_config(cfg, kind).transforms[:2]
    assert (resize.size, crop.size) == (size[0], (size[1], size[1]))
    assert resize.interpolation.value == "bilinear"
    with pytest.raises(ValueError, match="kind must be 'eval' or 'cluster'"):
        eval_transform_spec(cfg, "test")
