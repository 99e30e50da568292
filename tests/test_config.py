"""Configs: shipped files resolve, overrides apply, typos are errors with the valid keys."""

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
