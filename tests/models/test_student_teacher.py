"""Student/teacher: same start, gradients only reach the student, EMA and cosine schedule."""

import math

import numpy as np
import pytest
import torch
from timm.layers import DropPath

from amalib.losses.dino import DINOLoss
from amalib.models.student_teacher import build_student_teacher, cosine_schedule, ema_update

SMALL = dict(arch="vit_mini", patch_size=8, img_size=32, out_dim=64, hidden_dim=64,
             bottleneck_dim=32)


def crops_for(batch, n_local=2, global_size=32, local_size=16):
    return [torch.randn(batch, 3, global_size, global_size) for _ in range(2)] + [
        torch.randn(batch, 3, local_size, local_size) for _ in range(n_local)
    ]


def test_same_initial_weights_and_frozen_teacher_without_drop_path():
    torch.manual_seed(0)
    student, teacher = build_student_teacher(**SMALL, drop_path_rate=0.1)
    student_state, teacher_state = student.state_dict(), teacher.state_dict()
    assert student_state.keys() == teacher_state.keys()
    for key in student_state:
        assert torch.equal(student_state[key], teacher_state[key]), key
    assert not any(p.requires_grad for p in teacher.parameters())
    assert any(isinstance(m, DropPath) for m in student.modules())
    assert not any(isinstance(m, DropPath) for m in teacher.modules())
    # Separate storage: changing the student does not move the teacher.
    with torch.no_grad():
        next(student.parameters()).add_(1.0)
    assert not torch.equal(next(student.parameters()), next(teacher.parameters()))


def test_gradients_reach_every_trainable_student_parameter_and_no_teacher_parameter():
    torch.manual_seed(0)
    student, teacher = build_student_teacher(**SMALL, drop_path_rate=0.1)
    crops = crops_for(batch=4)
    loss_fn = DINOLoss(64)
    _, student_out = student(crops)
    _, teacher_out = teacher(crops[:2])
    loss_fn(student_out, teacher_out, epoch=0).backward()

    frozen_magnitude = student.head.last_layer.parametrizations.weight.original0
    for name, param in student.named_parameters():
        if param is frozen_magnitude:
            assert not param.requires_grad and param.grad is None
            continue
        assert param.requires_grad, name
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name
    for name, param in teacher.named_parameters():
        assert param.grad is None, name
    assert not teacher_out.requires_grad


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.999, 1.0])
def test_ema_update_matches_formula(momentum):
    torch.manual_seed(0)
    student, teacher = build_student_teacher(**SMALL, use_bn=True)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p))
        for b in student.buffers():
            if b.is_floating_point():
                b.add_(torch.rand_like(b))
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student_state = {k: v.clone() for k, v in student.state_dict().items()}
    param_names = {name for name, _ in teacher.named_parameters()}

    ema_update(student, teacher, momentum)

    after = teacher.state_dict()
    for key in before:
        if key in param_names:
            expected = momentum * before[key] + (1 - momentum) * student_state[key]
            torch.testing.assert_close(after[key], expected, rtol=1e-6, atol=1e-6)
        else:  # buffers are copied
            assert torch.equal(after[key], student_state[key]), key
    assert not any(p.requires_grad for p in teacher.parameters())


def test_ema_update_rejects_bad_inputs():
    student, teacher = build_student_teacher(**SMALL)
    with pytest.raises(ValueError):
        ema_update(student, teacher, 1.5)
    with pytest.raises(ValueError, match="no parameter"):
        ema_update(student, torch.nn.Linear(2, 2), 0.9)


@pytest.mark.parametrize(
    "base, final, epochs, steps, warmup, start",
    [(0.996, 1.0, 5, 3, 0, 0.0), (1e-3, 1e-6, 4, 5, 2, 0.0), (0.1, 0.0, 3, 1, 1, 0.05)],
)
def test_cosine_schedule_matches_dino_formula(base, final, epochs, steps, warmup, start):
    schedule = cosine_schedule(base, final, epochs, steps, warmup, start)
    assert schedule.shape == (epochs * steps,)
    warm = warmup * steps
    cosine_len = epochs * steps - warm
    for s in range(epochs * steps):
        if s < warm:
            expected = start + (base - start) * (s / (warm - 1) if warm > 1 else 0.0)
        else:
            i = s - warm
            expected = final + 0.5 * (base - final) * (1 + math.cos(math.pi * i / cosine_len))
        assert schedule[s] == pytest.approx(expected, abs=1e-12), s
    assert schedule[warm] == pytest.approx(base)
    assert np.all(np.diff(schedule[warm:]) * np.sign(final - base) >= -1e-15)


def test_loss_decreases_over_a_few_steps():
    torch.manual_seed(0)
    student, teacher = build_student_teacher(**SMALL, drop_path_rate=0.0)
    crops = crops_for(batch=4)
    loss_fn = DINOLoss(64)
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        _, student_out = student(crops)
        with torch.no_grad():
            _, teacher_out = teacher(crops[:2])
        loss = loss_fn(student_out, teacher_out, epoch=0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ema_update(student, teacher, 0.99)
        losses.append(loss.item())
    assert losses[-1] < 0.75 * losses[0], losses


def _autocast_step(device):
    torch.manual_seed(0)
    student, teacher = build_student_teacher(**SMALL)
    student, teacher = student.to(device), teacher.to(device)
    crops = [crop.to(device) for crop in crops_for(batch=2)]
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        _, student_out = student(crops)
        with torch.no_grad():
            _, teacher_out = teacher(crops[:2])
        loss = DINOLoss(64).to(device)(student_out, teacher_out, epoch=0)
    loss.backward()
    assert student_out.dtype == torch.bfloat16 and loss.dtype == torch.float32
    assert torch.isfinite(loss)
    for name, param in student.named_parameters():
        assert param.dtype == torch.float32, name
        if param.requires_grad:
            assert param.grad is not None and torch.isfinite(param.grad).all(), name


def test_bf16_autocast_step_on_cpu():
    _autocast_step(torch.device("cpu"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_autocast_step_on_cuda():
    _autocast_step(torch.device("cuda"))
