"""The fused training step equals the plain per-domain, per-crop reference (amalib issue 8).

``Trainer.compute_losses`` runs one teacher and one student forward over both domains (crops of
one resolution share a backbone call); :func:`reference_step.reference_losses`
runs one backbone and head call per domain and per crop and a loop over DINO's crop pairs. Both
must give the same value for every loss term, the same gradient for every student parameter and
the same DINO-centre update. Drop-path is off (``model.drop_path_rate=0``) so that the two paths
see the same network: with it, the random masks depend on how crops are grouped into calls.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from reference_step import (
    dino_loss_pairwise,
    reference_losses,
    reference_train_step,
)
from tiny_benchmark import tiny_overrides

from amalib.config import load_config
from amalib.losses.dino import DINOLoss
from amalib.train.trainer import Trainer


@pytest.fixture(scope="module")
def trainer(tiny_root, tmp_path_factory):
    # The patch stem: the reference runs each domain through the backbone on its own, the fused
    # step both domains in one call, so a batch-norm stem (mini's stem="cnn") sees different
    # batches in the two (by design: one forward per resolution, as DINO's multi-crop wrapper).
    cfg = load_config("mini", tiny_overrides(tiny_root, **{"model.drop_path_rate": 0.0,
                                                           "model.stem": "patch"}))
    t = Trainer(cfg, tmp_path_factory.mktemp("fast_step"), progress=False, log=lambda _: None)
    t.cluster(1)  # prototypes for CC and MA (epoch 1 is the first with every term on)
    t.student.train()
    return t


def _centres(trainer) -> dict[str, torch.Tensor]:
    return {d: loss.center.clone() for d, loss in trainer.dino_losses.items()}


def _set_centres(trainer, centres) -> None:
    for d, loss in trainer.dino_losses.items():
        loss.center.copy_(centres[d])


def _losses_and_grads(trainer, fn, batch, epoch):
    params = [p for p in trainer.student.parameters() if p.requires_grad]
    losses = fn(batch, epoch)
    total = trainer.schedule.combine(losses, epoch)
    grads = torch.autograd.grad(total, params, allow_unused=True)
    return {k: v.detach() for k, v in losses.items()}, total.detach(), grads


@pytest.mark.parametrize("epoch", [0, 1])
def test_fused_losses_and_gradients_match_the_reference(trainer, epoch):
    torch.manual_seed(epoch)
    batch = next(trainer.batches(epoch))
    # A non-zero centre, so that its use (and its update) is exercised.
    _set_centres(trainer, {d: 0.3 * torch.randn(1, trainer.cfg["model"]["out_dim"])
                           for d in trainer.domains})
    start = _centres(trainer)

    fused, fused_total, fused_grads = _losses_and_grads(
        trainer, lambda b, e: trainer.compute_losses(b, e)[0], batch, epoch)
    fused_centres = _centres(trainer)
    _set_centres(trainer, start)
    ref, ref_total, ref_grads = _losses_and_grads(
        trainer, lambda b, e: reference_losses(trainer, b, e), batch, epoch)
    ref_centres = _centres(trainer)

    expected = {"sd_sketch", "sd_photo"} | ({"cc", "ma", "sg"} if epoch == 1 else set())
    assert set(fused) == set(ref) == expected
    for term in expected:
        assert math.isfinite(float(ref[term]))
        torch.testing.assert_close(fused[term], ref[term], rtol=1e-4, atol=1e-5,
                                   msg=lambda m, t=term: f"loss term {t}: {m}")
    torch.testing.assert_close(fused_total, ref_total, rtol=1e-4, atol=1e-5)
    for d in trainer.domains:
        assert not torch.equal(fused_centres[d], start[d])  # the step did update the centre
        torch.testing.assert_close(fused_centres[d], ref_centres[d], rtol=1e-5, atol=1e-6)

    names = [n for n, p in trainer.student.named_parameters() if p.requires_grad]
    n_nonzero = 0
    for name, g_fused, g_ref in zip(names, fused_grads, ref_grads):
        assert (g_fused is None) == (g_ref is None), name
        if g_ref is None:
            continue
        scale = float(g_ref.abs().max())
        n_nonzero += scale > 0
        torch.testing.assert_close(g_fused, g_ref, rtol=1e-3, atol=1e-4 * max(scale, 1e-12),
                                   msg=lambda m, n=name: f"gradient of {n}: {m}")
    # Gradients reach the backbone (every block) and the head, not just a few parameters.
    assert n_nonzero >= 0.9 * len(names)
    assert all(p.grad is None for p in trainer.teacher.parameters())


def test_cc_ma_sg_change_the_gradient(trainer):
    """Epoch 1 is not a rerun of epoch 0: the extra terms move the student's gradient."""
    batch = next(trainer.batches(1))
    start = _centres(trainer)
    _, _, g1 = _losses_and_grads(trainer, lambda b, e: reference_losses(trainer, b, e), batch, 1)
    _set_centres(trainer, start)
    params = [p for p in trainer.student.parameters() if p.requires_grad]
    sd = reference_losses(trainer, batch, 1)
    total_sd = sum(trainer.schedule.weights(1)[t] * sd[t] for t in ("sd_sketch", "sd_photo"))
    g0 = torch.autograd.grad(total_sd, params, allow_unused=True)
    _set_centres(trainer, start)
    diff = max(float((a - b).abs().max()) for a, b in zip(g0, g1) if a is not None)
    assert diff > 1e-6


def test_reference_train_step_matches_the_fused_step(trainer):
    """One optimiser step + EMA from the same state lands on the same parameters."""
    batch = next(trainer.batches(1))
    state = {
        "student": copy.deepcopy(trainer.student.state_dict()),
        "teacher": copy.deepcopy(trainer.teacher.state_dict()),
        "optimizer": copy.deepcopy(trainer.optimizer.state_dict()),
        "centres": _centres(trainer),
    }

    def restore() -> None:
        trainer.student.load_state_dict(state["student"])
        trainer.teacher.load_state_dict(state["teacher"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        _set_centres(trainer, state["centres"])

    out_fused, _ = trainer.train_step(batch, 1, global_step=1)
    after_fused = {k: v.clone() for k, v in trainer.student.state_dict().items()}
    teacher_fused = {k: v.clone() for k, v in trainer.teacher.state_dict().items()}
    restore()
    out_ref = reference_train_step(trainer, batch, 1, global_step=1)
    assert "compute_losses" not in vars(trainer)  # the fused method is back
    assert set(out_fused) == set(out_ref)
    torch.testing.assert_close(out_fused["total"], out_ref["total"], rtol=1e-4, atol=1e-5)
    moved = 0
    for key, value in trainer.student.state_dict().items():
        moved += not torch.equal(value, state["student"][key])
        torch.testing.assert_close(value, after_fused[key], rtol=1e-4, atol=1e-6)
    for key, value in trainer.teacher.state_dict().items():
        torch.testing.assert_close(value, teacher_fused[key], rtol=1e-4, atol=1e-6)
    assert moved > 0
    restore()


@pytest.mark.parametrize(("n_global", "n_crops"), [(1, 2), (1, 3), (2, 2), (2, 5)])
def test_pairwise_dino_equals_the_loss_module(n_global, n_crops):
    torch.manual_seed(n_global * 10 + n_crops)
    b, k = 5, 11
    module = DINOLoss(k, n_epochs=3, n_global=n_global, teacher_temp=0.07,
                      warmup_teacher_temp=0.04, warmup_teacher_temp_epochs=2)
    module.center.copy_(torch.randn(1, k))
    student = [torch.randn(b, k) for _ in range(n_crops)]
    teacher = [torch.randn(b, k) for _ in range(n_global)]
    ref = dino_loss_pairwise(student, teacher, module.center, module.teacher_temp(1),
                             module.student_temp)
    got = module(torch.cat(student), torch.cat(teacher), epoch=1)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)


def test_pairwise_dino_hand_worked():
    """A constant student predicts the uniform distribution: the loss is log K, any teacher."""
    k = 7
    student = [torch.zeros(3, k) for _ in range(4)]
    teacher = [torch.randn(3, k), torch.randn(3, k)]
    loss = dino_loss_pairwise(student, teacher, torch.randn(1, k), 0.04, 0.1)
    assert float(loss) == pytest.approx(math.log(k), rel=1e-6)


def test_bf16_autocast_path_stays_close_to_the_float32_reference(trainer):
    """The autocast branch (bf16 on CUDA; forced on here on the CPU) stays near float32.

    bf16 keeps 8 bits of mantissa, so only closeness is asked: every term within 1 %, and the
    flattened gradient pointing the same way (cosine > 0.999, norms within 3 %). Observed on the
    tiny config: terms within 0.2 %, cosine 0.99999, norm ratio 0.991.
    """
    batch = next(trainer.batches(1))
    start = _centres(trainer)
    ref, _, ref_grads = _losses_and_grads(
        trainer, lambda b, e: reference_losses(trainer, b, e), batch, 1)
    _set_centres(trainer, start)
    trainer.use_amp, trainer.amp_dtype = True, torch.bfloat16
    try:
        amp, _, amp_grads = _losses_and_grads(
            trainer, lambda b, e: trainer.compute_losses(b, e)[0], batch, 1)
    finally:
        trainer.use_amp, trainer.amp_dtype = False, None
        _set_centres(trainer, start)
    for term in ref:
        assert amp[term].dtype == torch.float32
        assert float(amp[term]) == pytest.approx(float(ref[term]), rel=1e-2, abs=1e-3), term
    flat = [torch.cat([g.flatten() for g in gs if g is not None]) for gs in (amp_grads, ref_grads)]
    assert not torch.equal(flat[0], flat[1])  # autocast did run in bf16
    cosine = torch.nn.functional.cosine_similarity(flat[0], flat[1], dim=0)
    assert float(cosine) > 0.999
    assert float(flat[0].norm()) == pytest.approx(float(flat[1].norm()), rel=3e-2)
