"""Process-group helpers for ``torchrun`` (DDP); every function is a no-op in a single process.

Launch multi-GPU training with ``torchrun --nproc_per_node N -m amalib train ...`` (multi-node:
add torchrun's ``--nnodes``, ``--node_rank`` and ``--rdzv_endpoint``). On CPU the gloo backend is
used, which is how the tests run two processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")

__all__ = [
    "DistInfo",
    "init_distributed",
    "is_distributed",
    "rank",
    "world_size",
    "is_main_process",
    "barrier",
    "gather_by_index",
    "broadcast_object",
    "run_on_main_process",
]


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def init_distributed(device: str | None = None) -> DistInfo:
    """Initialise the process group from torchrun's environment, or describe a single process.

    Args:
        device: ``"cuda"``, ``"cpu"`` or ``None`` (CUDA when available).
    """
    want_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if want_cuda and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but CUDA is not available on this machine")
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        if not is_distributed():
            backend = "nccl" if want_cuda else "gloo"
            if want_cuda:
                torch.cuda.set_device(local_rank)
            dist.init_process_group(backend=backend)
        dev = torch.device("cuda", local_rank) if want_cuda else torch.device("cpu")
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev)
    if is_distributed():  # initialised by the caller (e.g. a test)
        dev = torch.device("cuda", torch.cuda.current_device()) if want_cuda else torch.device("cpu")
        return DistInfo(dist.get_rank(), dist.get_world_size(), 0, dev)
    dev = torch.device("cuda") if want_cuda else torch.device("cpu")
    return DistInfo(0, 1, 0, dev)


def gather_by_index(values: torch.Tensor, indices: torch.Tensor, total: int) -> torch.Tensor:
    """Assemble per-process rows into one ``(total, ...)`` tensor ordered by dataset index.

    Every process passes the rows it computed and their dataset indices (a distributed sampler
    may hand a few indices to two processes to even out the shards; those rows are identical and
    simply overwrite each other). Returns the full tensor on every process.

    Args:
        values: ``(n, ...)`` rows computed by this process.
        indices: ``(n,)`` dataset index of each row.
        total: dataset size.
    """
    if not is_distributed():
        out = values.new_zeros((total, *values.shape[1:]))
        out[indices.to(values.device)] = values
        return out
    n = torch.tensor([values.shape[0]], device=values.device)
    counts = [torch.zeros_like(n) for _ in range(world_size())]
    dist.all_gather(counts, n)
    longest = int(max(c.item() for c in counts))
    padded = values.new_zeros((longest, *values.shape[1:]))
    padded[: values.shape[0]] = values
    padded_idx = torch.full((longest,), -1, dtype=torch.long, device=values.device)
    padded_idx[: values.shape[0]] = indices.to(values.device)
    all_values = [torch.zeros_like(padded) for _ in range(world_size())]
    all_indices = [torch.zeros_like(padded_idx) for _ in range(world_size())]
    dist.all_gather(all_values, padded)
    dist.all_gather(all_indices, padded_idx)
    out = values.new_zeros((total, *values.shape[1:]))
    for v, i in zip(all_values, all_indices):
        keep = i >= 0
        out[i[keep]] = v[keep]
    return out


def average_buffers(module: torch.nn.Module) -> None:
    """Replace each floating-point buffer of ``module`` (batch-norm running statistics) by its
    mean over the processes, in place; integer buffers are taken from rank 0. No-op in a single
    process.

    Each rank's batch norm tracks statistics of its own batches, so without this the ranks of a
    DDP run would extract features with different statistics (the teacher's buffers are copied
    from each rank's student after every step).
    """
    if not is_distributed():
        return
    for buffer in module.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
            buffer.div_(world_size())
        else:
            dist.broadcast(buffer, src=0)


def broadcast_object(obj, src: int = 0):
    """Send a picklable object from ``src`` to every process (identity in a single process)."""
    if not is_distributed():
        return obj
    holder = [obj if rank() == src else None]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def run_on_main_process(fn: Callable[..., T], *args, **kwargs) -> T | None:
    """Run ``fn`` on rank 0 only and make every process wait for it (a barrier that reports).

    A bare ``dist.barrier()`` after rank-0-only work hangs the other ranks until the process
    group times out when rank 0 fails (disk full, a bad data root). Here rank 0 broadcasts
    whether ``fn`` succeeded: rank 0 re-raises its own exception, and every other rank raises a
    ``RuntimeError`` that names it. In a single process this is simply ``fn(*args, **kwargs)``.

    Returns:
        ``fn``'s result on rank 0, ``None`` on the other ranks.
    """
    if not is_distributed():
        return fn(*args, **kwargs)
    result, error = None, None
    if is_main_process():
        try:
            result = fn(*args, **kwargs)
        except BaseException as err:  # KeyboardInterrupt too: reported below, then re-raised
            error = err
    failure = broadcast_object(None if error is None else f"{type(error).__name__}: {error}")
    if error is not None:
        raise error
    if failure is not None:
        name = getattr(fn, "__qualname__", repr(fn))
        raise RuntimeError(f"rank 0 failed in {name} ({failure}); rank {rank()} stops too")
    return result
