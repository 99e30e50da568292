"""Batched, inference-mode feature extraction (for clustering and retrieval evaluation)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from amalib.distributed import gather_by_index, is_distributed, is_main_process

__all__ = ["FeatureSet", "IN_PROCESS_MAX_IMAGES", "extract_features"]

#: Sets of at most this many images are read in the calling process, whatever ``num_workers``
#: says: starting worker processes costs more than they save on a few batches. On the 2-core
#: machine, extracting the mini-benchmark's test sets (900 images) takes 2.2 s in-process
#: against 4.3 s with 2 workers, its training sets for k-means (2 x 1,200) 5.8 against 8.1 s
#: with the clustering (docs/performance.md). It changes no number for a dataset whose
#: transform draws no random numbers (every evaluation transform): a DataLoader draws the same
#: seeds from the global random stream with or without workers. The limit applies to the whole
#: set, also under DDP, where each process reads its share.
IN_PROCESS_MAX_IMAGES = 2048


@dataclass
class FeatureSet:
    """Features of a whole dataset, ordered by dataset index.

    Attributes:
        features: ``(N, D)`` float32 on the CPU, L2-normalised (unless extracted with
            ``normalize=False``).
        valid: ``(N,)`` bool; False where the image could not be read (its row is zero).
        labels: ``(N,)`` int64 class ids for labelled (evaluation) sets, else None.
    """

    features: torch.Tensor
    valid: torch.Tensor
    labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.features)


def _collate(batch):
    from amalib.data.datasets import collate_skip_broken

    return collate_skip_broken(batch)


@torch.inference_mode()
def extract_features(
    backbone: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    num_workers: int = 0,
    amp_dtype: torch.dtype | None = None,
    desc: str = "features",
    progress: bool = True,
    normalize: bool = True,
) -> FeatureSet:
    """CLS features of every image of ``dataset``, gathered across processes in index order.

    Args:
        backbone: Maps ``(n, 3, H, W)`` to ``(n, D)``; moved to ``device`` and put in eval mode
            for the extraction (its training mode is restored afterwards).
        dataset: Yields ``(image, index)`` or ``(image, label, index)``.
        batch_size: Images per forward pass.
        device: Where the backbone runs.
        num_workers: DataLoader workers for a set of more than :data:`IN_PROCESS_MAX_IMAGES`
            images (a smaller one is read in this process).
        amp_dtype: Autocast dtype on CUDA (e.g. ``torch.bfloat16``); ignored on the CPU.
        desc: Progress-bar label.
        progress: Show a progress bar (main process only).
        normalize: L2-normalise each feature (retrieval, spherical k-means); ``False`` keeps the
            raw CLS features (the release's Euclidean k-means).
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    sampler = None
    if is_distributed():
        sampler = torch.utils.data.distributed.DistributedSampler(dataset, shuffle=False)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        sampler=sampler,
        num_workers=num_workers if len(dataset) > IN_PROCESS_MAX_IMAGES else 0,
        collate_fn=_collate,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    backbone = backbone.to(device)  # modules move in place; a no-op when already there
    was_training = backbone.training
    backbone.eval()
    feats, idx, labels = [], [], []
    use_amp = amp_dtype is not None and device.type == "cuda"
    for batch in tqdm(loader, desc=desc, leave=False, disable=not (progress and is_main_process())):
        if batch is None:
            continue
        images, *rest = batch
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            out = backbone(images.to(device, non_blocking=True))
        out = out.float()
        feats.append(torch.nn.functional.normalize(out, dim=1) if normalize else out)
        idx.append(rest[-1].to(device))
        if len(rest) == 2:
            labels.append(rest[0].to(device))
    backbone.train(was_training)
    n = len(dataset)
    dim = feats[0].shape[1] if feats else getattr(backbone, "embed_dim", 0)
    f = torch.cat(feats) if feats else torch.zeros(0, dim, device=device)
    i = torch.cat(idx) if idx else torch.zeros(0, dtype=torch.long, device=device)
    features = gather_by_index(f, i, n).cpu()
    valid = gather_by_index(torch.ones(len(i), dtype=torch.bool, device=device), i, n).cpu()
    lab = gather_by_index(torch.cat(labels), i, n).cpu() if labels else None
    return FeatureSet(features, valid, lab)
