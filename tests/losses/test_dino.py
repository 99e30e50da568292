"""DINO loss against a plain loop reference; centre update, schedule, state, two-process centre."""

import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from amalib.losses.dino import DINOLoss


def reference_dino_loss(student_output, teacher_output, center, teacher_temp, student_temp,
                        n_global):
    """DINO's loss written element by element with Python loops."""
    batch = teacher_output.shape[0] // n_global
    n_crops = student_output.shape[0] // batch
    total, n_terms = 0.0, 0
    for g in range(n_global):
        for c in range(n_crops):
            if c == g:
                continue
            pair_total = 0.0
            for i in range(batch):
                t = (teacher_output[g * batch + i] - center[0]) / teacher_temp
                q = torch.exp(t - t.max())
                q = q / q.sum()
                s = student_output[c * batch + i] / student_temp
                log_p = s - (s.max() + torch.log(torch.exp(s - s.max()).sum()))
                pair_total += -(q * log_p).sum()
            total += pair_total / batch
            n_terms += 1
    return total / n_terms


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize(
    "n_global, n_local", [(1, 2), (1, 5), (2, 0), (2, 2), (2, 5)]  # (1, 0) has no pair
)
@pytest.mark.parametrize("temps", [(0.04, 0.1), (0.07, 0.2), (1.0, 1.0)])
def test_matches_loop_reference(batch, n_local, n_global, temps):
    teacher_temp, student_temp = temps
    out_dim = 7
    generator = torch.Generator().manual_seed(batch * 100 + n_local * 10 + n_global)
    n_crops = n_global + n_local
    student_output = torch.randn(n_crops * batch, out_dim, generator=generator, dtype=torch.float64)
    teacher_output = torch.randn(n_global * batch, out_dim, generator=generator, dtype=torch.float64)
    loss_fn = DINOLoss(out_dim, teacher_temp=teacher_temp, student_temp=student_temp,
                       n_global=n_global).double()
    with torch.no_grad():
        loss_fn.center.copy_(torch.randn(1, out_dim, generator=generator, dtype=torch.float64))
    center_before = loss_fn.center.clone()

    loss = loss_fn(student_output, teacher_output, epoch=0)
    expected = reference_dino_loss(student_output, teacher_output, center_before, teacher_temp,
                                   student_temp, n_global)
    torch.testing.assert_close(loss, expected.float(), rtol=1e-6, atol=1e-6, check_dtype=False)


@pytest.mark.parametrize("epoch", [0, 1, 3, 4, 10, 250])
def test_teacher_temperature_warmup_schedule(epoch):
    loss_fn = DINOLoss(5, teacher_temp=0.07, warmup_teacher_temp=0.04,
                       warmup_teacher_temp_epochs=5, n_epochs=20)
    # Linear from 0.04 (epoch 0) to 0.07 (epoch 4), then constant; after n_epochs, the last value.
    expected = 0.04 + (0.07 - 0.04) * epoch / 4 if epoch < 5 else 0.07
    assert loss_fn.teacher_temp(epoch) == pytest.approx(expected)

    # The loss uses that temperature.
    generator = torch.Generator().manual_seed(epoch)
    student_output = torch.randn(4 * 2, 5, generator=generator, dtype=torch.float64)
    teacher_output = torch.randn(2 * 2, 5, generator=generator, dtype=torch.float64)
    loss = loss_fn.double()(student_output, teacher_output, epoch)
    reference = reference_dino_loss(student_output, teacher_output, torch.zeros(1, 5), expected,
                                    0.1, 2)
    torch.testing.assert_close(loss, reference, rtol=1e-6, atol=1e-6, check_dtype=False)


def test_centre_update_by_hand():
    loss_fn = DINOLoss(2, center_momentum=0.9)
    teacher_output = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    loss_fn.update_center(teacher_output)  # 0.9·0 + 0.1·mean = 0.1·(2, 4)
    torch.testing.assert_close(loss_fn.center, torch.tensor([[0.2, 0.4]]))
    loss_fn.update_center(torch.tensor([[0.0, 0.0], [0.0, 0.0]]))
    torch.testing.assert_close(loss_fn.center, torch.tensor([[0.18, 0.36]]))


def test_forward_updates_centre_after_computing_the_loss():
    torch.manual_seed(0)
    loss_fn = DINOLoss(6, center_momentum=0.7)
    student_output, teacher_output = torch.randn(8, 6), torch.randn(4, 6)
    loss = loss_fn(student_output, teacher_output, epoch=0)
    expected_loss = reference_dino_loss(student_output, teacher_output, torch.zeros(1, 6), 0.04,
                                        0.1, 2)
    torch.testing.assert_close(loss, expected_loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss_fn.center, 0.3 * teacher_output.mean(dim=0, keepdim=True))


def test_gradient_reaches_student_only():
    student_output = torch.randn(6, 5, requires_grad=True)
    teacher_output = torch.randn(4, 5, requires_grad=True)
    DINOLoss(5)(student_output, teacher_output, 0).backward()
    assert student_output.grad is not None and student_output.grad.abs().sum() > 0
    assert teacher_output.grad is None


def test_centre_is_saved_and_restored():
    loss_fn = DINOLoss(4)
    loss_fn.update_center(torch.randn(3, 4))
    state = loss_fn.state_dict()
    assert set(state) == {"center"}
    restored = DINOLoss(4)
    restored.load_state_dict(state)
    assert torch.equal(restored.center, loss_fn.center)


def test_bad_shapes_are_errors():
    loss_fn = DINOLoss(4)
    with pytest.raises(ValueError, match="multiple of n_global"):
        loss_fn(torch.randn(6, 4), torch.randn(3, 4), 0)
    with pytest.raises(ValueError, match="multiple of the batch"):
        loss_fn(torch.randn(5, 4), torch.randn(4, 4), 0)
    with pytest.raises(ValueError, match="epoch"):
        loss_fn.teacher_temp(-1)


def test_bf16_inputs_are_computed_in_float32():
    torch.manual_seed(0)
    student_output, teacher_output = torch.randn(8, 16), torch.randn(4, 16)
    loss_fn = DINOLoss(16)
    loss = loss_fn(student_output.bfloat16(), teacher_output.bfloat16(), 0)
    assert loss.dtype == torch.float32 and loss_fn.center.dtype == torch.float32
    reference = reference_dino_loss(student_output.bfloat16().float(),
                                    teacher_output.bfloat16().float(), torch.zeros(1, 16), 0.04,
                                    0.1, 2)
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ two processes (gloo)


def _centre_worker(rank, world_size, init_method, cases, result_path):
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world_size)
    try:
        centres = []
        for chunks in cases:
            loss_fn = DINOLoss(chunks[0].shape[1], center_momentum=0.8)
            loss_fn.update_center(chunks[rank])
            centres.append(loss_fn.center)
        torch.save(centres, f"{result_path}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.mark.ddp
def test_all_reduced_centre_equals_single_process_centre(tmp_path):
    torch.manual_seed(0)
    batches = [torch.randn(8, 5), torch.randn(8, 5)]
    # Equal local batches (4 + 4) and unequal ones (2 + 6): the global mean either way.
    cases = [list(batches[0].split([4, 4])), list(batches[1].split([2, 6]))]
    init_method = f"file://{tmp_path / 'store'}"
    result_path = str(tmp_path / "center")
    mp.spawn(_centre_worker, args=(2, init_method, cases, result_path), nprocs=2, join=True)

    for rank in range(2):
        centres = torch.load(f"{result_path}.{rank}", weights_only=True)
        for full_batch, centre in zip(batches, centres):
            single = DINOLoss(5, center_momentum=0.8)
            single.update_center(full_batch)
            torch.testing.assert_close(centre, single.center, rtol=1e-6, atol=1e-7)
            # And that centre is 0.2 × the mean of the concatenated batch, written out.
            expected = [0.2 * sum(full_batch[i, k].item() for i in range(8)) / 8 for k in range(5)]
            assert all(math.isclose(centre[0, k].item(), expected[k], rel_tol=1e-5, abs_tol=1e-7)
                       for k in range(5))
