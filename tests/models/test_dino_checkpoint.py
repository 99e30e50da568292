"""Official DINO checkpoint layouts: round trips, safe loading, clear errors.

The files are written here in DINO's published key layout (``main_dino.py`` saves
``student.state_dict()`` of a DDP-wrapped ``MultiCropWrapper`` → ``module.backbone.*``,
``module.head.*``; the teacher is not wrapped → ``backbone.*``, ``head.*``; the head's classic
weight-norm keys are ``last_layer.weight_g`` / ``last_layer.weight_v``).
"""

import argparse
import copy
import pathlib

import pytest
import torch

from amalib.errors import CheckpointError
from amalib.models.checkpoint import (
    describe_backbone_state,
    load_dino_backbone,
    load_dino_weights,
    official_checkpoint_name,
    parse_hub_tag,
    save_backbone,
)
from amalib.models.student_teacher import build_student_teacher, ema_update
from amalib.models.vit import create_vit

SMALL = dict(arch="vit_mini", patch_size=8, img_size=32, out_dim=64, hidden_dim=64,
             bottleneck_dim=32)
# Our parametrized weight-norm names → the classic names DINO's checkpoints use.
TO_DINO_HEAD_KEYS = {
    "last_layer.parametrizations.weight.original0": "last_layer.weight_g",
    "last_layer.parametrizations.weight.original1": "last_layer.weight_v",
}


def perturb_(module, scale=0.05):
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))
    return module


def dino_wrapper_state(wrapper, prefix):
    """A MultiCropWrapper's state dict in DINO's layout, with ``prefix`` (e.g. ``module.``)."""
    state = {f"{prefix}backbone.{k}": v.clone() for k, v in wrapper.backbone.state_dict().items()}
    for key, value in wrapper.head.state_dict().items():
        state[f"{prefix}head.{TO_DINO_HEAD_KEYS.get(key, key)}"] = value.clone()
    return state


def write_full_checkpoint(path, student, teacher, *, center, args=None):
    trained = copy.deepcopy(student)  # a real optimiser state, without touching ``student``
    optimizer = torch.optim.SGD(trained.parameters(), lr=0.1, momentum=0.9)
    trained(torch.randn(2, 3, 32, 32))[1].sum().backward()
    optimizer.step()
    torch.save(
        {
            "student": dino_wrapper_state(student, "module."),
            "teacher": dino_wrapper_state(teacher, ""),
            "optimizer": optimizer.state_dict(),
            "epoch": 7,
            "args": args or argparse.Namespace(arch="vit_mini", patch_size=8, out_dim=64,
                                               lr=0.0005, local_crops_scale=(0.05, 0.4)),
            "dino_loss": {"center": center},
            "fp16_scaler": {"scale": 65536.0, "_growth_tracker": 0},
        },
        path,
    )


@pytest.fixture(scope="module")
def pair():
    """A student and a teacher with different weights (as after some DINO training)."""
    torch.manual_seed(0)
    student, teacher = build_student_teacher(**SMALL, drop_path_rate=0.0)
    perturb_(student)
    perturb_(teacher)
    return student.eval(), teacher.eval()


@pytest.fixture(scope="module")
def full_checkpoint(tmp_path_factory, pair):
    path = tmp_path_factory.mktemp("dino") / "dino_vitmini8_pretrain_full_checkpoint.pth"
    center = torch.randn(1, 64)
    write_full_checkpoint(path, *pair, center=center)
    return path, center


def outputs(wrapper, images):
    with torch.no_grad():
        return wrapper.eval()(images)


# ------------------------------------------------------------------ backbone-only files


@pytest.fixture(scope="module")
def mini_vit():
    torch.manual_seed(1)
    return perturb_(create_vit("vit_mini", patch_size=8, img_size=32)).eval()


@pytest.mark.parametrize("prefix", ["", "module.", "backbone.", "module.backbone."])
def test_backbone_file_round_trip_is_exact(tmp_path, mini_vit, prefix):
    model = mini_vit
    path = tmp_path / "dino_vitmini8_pretrain.pth"
    torch.save({prefix + k: v for k, v in model.state_dict().items()}, path)

    loaded = load_dino_backbone(path, arch="vit_mini", patch_size=8)
    assert not loaded.training
    for size in (32, 16):
        images = torch.randn(3, 3, size, size)
        with torch.no_grad():
            assert torch.equal(loaded(images), model(images))


@pytest.mark.parametrize("half", [False, True])
def test_save_backbone_round_trip(tmp_path, pair, half):
    _, teacher = pair
    path = save_backbone(teacher, tmp_path / "sub" / "backbone.pth", half=half)
    stored = torch.load(path, map_location="cpu", weights_only=True)
    assert set(stored) == set(teacher.backbone.state_dict())  # official layout: no prefixes
    expected_dtype = torch.float16 if half else torch.float32
    assert all(v.dtype == expected_dtype for v in stored.values())

    loaded = load_dino_backbone(path, arch="vit_mini", patch_size=8)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    reference = create_vit("vit_mini", patch_size=8, img_size=32).eval()
    reference.load_state_dict(
        {k: (v.half() if half else v).float() for k, v in teacher.backbone.state_dict().items()}
    )
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(images), reference(images))


def test_backbone_file_into_wrappers_leaves_heads_alone(tmp_path, pair):
    _, teacher = pair
    path = save_backbone(teacher, tmp_path / "backbone.pth")
    torch.manual_seed(5)
    student2, teacher2 = build_student_teacher(**SMALL)
    head_before = {k: v.clone() for k, v in student2.head.state_dict().items()}
    report = load_dino_weights(student2, teacher2, path)
    assert report["kind"] == "backbone" and report["head_loaded"] is False
    assert report["dino_center"] is None
    for key, value in student2.head.state_dict().items():
        assert torch.equal(value, head_before[key])
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        for wrapper in (student2, teacher2):
            assert torch.equal(wrapper.eval().backbone(images), teacher.backbone(images))


# ------------------------------------------------------------------ full checkpoints


def test_full_checkpoint_loads_teacher_into_both(full_checkpoint, pair):
    path, center = full_checkpoint
    student, teacher = pair
    torch.manual_seed(3)
    student2, teacher2 = build_student_teacher(**SMALL, drop_path_rate=0.1)
    report = load_dino_weights(student2, teacher2, path)

    assert report["kind"] == "full" and report["head_loaded"] is True
    assert report["backbone_source"] == "teacher" and report["epoch"] == 7
    assert torch.equal(report["dino_center"], center)
    images = [torch.randn(2, 3, 32, 32), torch.randn(2, 3, 16, 16)]
    expected_features, expected_outputs = outputs(teacher, images)
    for wrapper in (student2, teacher2):
        features, head_outputs = outputs(wrapper, images)
        assert torch.equal(features, expected_features)
        assert torch.equal(head_outputs, expected_outputs)
    # Loading keeps what must stay frozen frozen.
    assert not any(p.requires_grad for p in teacher2.parameters())
    assert not student2.head.last_layer.parametrizations.weight.original0.requires_grad
    assert student2.head.last_layer.parametrizations.weight.original1.requires_grad


def test_full_checkpoint_each_network_from_its_own_entry(full_checkpoint, pair):
    path, _ = full_checkpoint
    student, teacher = pair
    student2, teacher2 = build_student_teacher(**SMALL)
    load_dino_weights(student2, teacher2, path, source="each")
    images = torch.randn(2, 3, 32, 32)
    for ours, original in ((student2, student), (teacher2, teacher)):
        for got, expected in zip(outputs(ours, images), outputs(original, images)):
            assert torch.equal(got, expected)
    assert not torch.equal(outputs(student2, images)[0], outputs(teacher2, images)[0])


@pytest.mark.parametrize("source", ["teacher", "student"])
def test_load_dino_backbone_from_full_checkpoint(full_checkpoint, pair, source):
    path, _ = full_checkpoint
    original = dict(zip(("student", "teacher"), pair))[source]
    loaded = load_dino_backbone(path, arch="vit_mini", patch_size=8, source=source)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(images), original.backbone(images))


def test_full_checkpoint_without_head_when_not_asked(full_checkpoint):
    path, _ = full_checkpoint
    torch.manual_seed(4)
    student2, teacher2 = build_student_teacher(**SMALL)
    head_before = {k: v.clone() for k, v in teacher2.head.state_dict().items()}
    report = load_dino_weights(student2, teacher2, path, load_head=False)
    assert report["head_loaded"] is False
    assert all(torch.equal(v, head_before[k]) for k, v in teacher2.head.state_dict().items())


def test_only_namespace_is_allowed_beyond_plain_types(tmp_path, pair):
    path = tmp_path / "evil_full_checkpoint.pth"
    args = argparse.Namespace(output_dir=pathlib.PurePosixPath("/tmp/out"))
    write_full_checkpoint(path, *pair, center=torch.zeros(1, 64), args=args)
    with pytest.raises(CheckpointError, match="weights_only"):  # never loaded unsafely
        load_dino_backbone(path, arch="vit_mini", patch_size=8)


# ------------------------------------------------------------------ errors


def test_missing_file_says_where_to_get_one(tmp_path):
    missing = tmp_path / "nowhere" / "dino_vitbase16_pretrain.pth"
    with pytest.raises(FileNotFoundError) as info:
        load_dino_backbone(missing)
    message = str(info.value)
    assert str(missing) in message
    assert "dino_vitbase16_pretrain.pth" in message
    assert "dino_vitbase16_pretrain_full_checkpoint.pth" in message
    assert "https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/" in message

    with pytest.raises(FileNotFoundError, match="dino_deitsmall8_pretrain.pth"):
        load_dino_backbone(missing, arch="vit_small", patch_size=8)
    student, teacher = build_student_teacher(**SMALL)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_dino_weights(student, teacher, missing)


def save_vit(tmp_path, arch, patch_size, img_size=32):
    path = tmp_path / f"{arch}{patch_size}.pth"
    model = create_vit(arch, patch_size=patch_size, img_size=img_size, weight_init="skip")
    torch.save(model.state_dict(), path)
    return path


def test_wrong_depth_lists_keys_and_suggests_arch(tmp_path):
    path = save_vit(tmp_path, "vit_tiny", 8)
    with pytest.raises(ValueError) as info:
        load_dino_backbone(path, arch="vit_mini", patch_size=8)
    message = str(info.value)
    assert "unexpected keys" in message and "blocks.6.attn.qkv.weight" in message
    assert "arch='vit_tiny', patch_size=8" in message


def test_wrong_patch_size_lists_shapes_and_suggests_patch(tmp_path, mini_vit):
    path = save_backbone(mini_vit, tmp_path / "mini8.pth")
    with pytest.raises(ValueError) as info:
        load_dino_backbone(path, arch="vit_mini", patch_size=16)
    message = str(info.value)
    assert "patch_embed.proj.weight: file (192, 3, 8, 8) vs model (192, 3, 16, 16)" in message
    assert "arch='vit_mini', patch_size=8" in message


def test_cnn_stem_round_trip_and_mismatch_names_the_stem(tmp_path):
    torch.manual_seed(0)
    student, teacher = build_student_teacher(arch="vit_mini", patch_size=8, img_size=32,
                                             out_dim=64, hidden_dim=32, bottleneck_dim=16,
                                             stem="cnn")
    student.train()(torch.randn(8, 3, 32, 32))  # batch-norm statistics away from their init
    ema_update(student, teacher, 0.5)
    path = save_backbone(teacher, tmp_path / "cnn_stem.pth")
    stored = torch.load(path, weights_only=True)
    assert "patch_embed.proj.1.running_mean" in stored  # buffers travel with the weights
    info = describe_backbone_state(stored)
    assert (info["stem"], info["patch_size"], info["arch"]) == ("cnn", 8, "vit_mini")

    other_student, other_teacher = build_student_teacher(
        arch="vit_mini", patch_size=8, img_size=32, out_dim=64, hidden_dim=32,
        bottleneck_dim=16, stem="cnn")
    load_dino_weights(other_student, other_teacher, path)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(other_teacher.eval().backbone(images), teacher.eval().backbone(images))
    with torch.no_grad():
        loaded = load_dino_backbone(path, arch="vit_mini", patch_size=8, stem="cnn")
        assert torch.equal(loaded(images), teacher.backbone(images))
    # A plain ViT whose patch (3 px) is as small as a 3x3 kernel is still a patch stem.
    plain = describe_backbone_state(create_vit("vit_mini", patch_size=3, img_size=12).state_dict())
    assert (plain["stem"], plain["patch_size"]) == ("patch", 3)
    with pytest.raises(ValueError) as err:  # into a plain patch-projection ViT
        load_dino_backbone(path, arch="vit_mini", patch_size=8)
    message = str(err.value)
    assert "'stem': 'patch'" in message and "unexpected keys: patch_embed.proj.0.weight" in message
    assert "arch='vit_mini', patch_size=8, stem='cnn'" in message


def test_wrong_width_lists_shapes_and_suggests_arch(tmp_path, mini_vit):
    path = save_backbone(mini_vit, tmp_path / "mini8.pth")
    with pytest.raises(ValueError) as info:
        load_dino_backbone(path, arch="vit_small", patch_size=8)
    message = str(info.value)
    assert "cls_token: file (1, 1, 192) vs model (1, 1, 384)" in message
    assert "missing keys: blocks.6.attn.proj.bias" in message  # vit_small: 12 blocks, file: 6
    assert "arch='vit_mini', patch_size=8" in message


def test_missing_key_is_named(tmp_path, mini_vit):
    state = dict(mini_vit.state_dict())
    del state["norm.weight"]
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="missing keys: norm.weight"):
        load_dino_backbone(path, arch="vit_mini", patch_size=8)


def test_head_mismatch_is_named(full_checkpoint):
    path, _ = full_checkpoint
    student, teacher = build_student_teacher(**{**SMALL, "out_dim": 32})
    with pytest.raises(ValueError) as info:
        load_dino_weights(student, teacher, path)
    message = str(info.value)
    assert "last_layer.weight_v: file (64, 32) vs model (32, 32)" in message
    assert "out_dim=64" in message and "load_head=False" in message


def test_position_grid_of_another_size_is_resampled(tmp_path, pair):
    _, teacher = pair
    path = save_backbone(teacher, tmp_path / "backbone32.pth")
    student2, teacher2 = build_student_teacher(**{**SMALL, "img_size": 16})
    report = load_dino_weights(student2, teacher2, path)
    assert report["pos_embed_resampled"] is True
    assert teacher2.backbone.pos_embed.shape == (1, 1 + 2 * 2, 192)
    # The original model resamples at run time for 16 px inputs; the loaded one stores that grid.
    images = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(teacher2.eval().backbone(images), teacher.backbone(images))


# ------------------------------------------------------------------ names and tags


def test_official_names_and_hub_tags():
    assert official_checkpoint_name("vit_base", 16) == "dino_vitbase16_pretrain.pth"
    assert official_checkpoint_name("vit_small", 8) == "dino_deitsmall8_pretrain.pth"
    assert (official_checkpoint_name("vit_base", 8, full=True)
            == "dino_vitbase8_pretrain_full_checkpoint.pth")
    assert official_checkpoint_name("vit_mini", 8) is None
    assert parse_hub_tag("hub:vit_base_patch16_224.dino") == "vit_base_patch16_224.dino"
    assert parse_hub_tag("checkpoints/dino.pth") is None
    assert parse_hub_tag(pathlib.Path("hub:x")) is None
    with pytest.raises(ValueError):
        parse_hub_tag("hub:")
