"""Small diagnostics of AMA's pieces: cluster purity, prototype neighbours, the teacher's
confidence in its own cluster, the domains' neighbour shares and a toy DINO collapse experiment.

Labels are read here for diagnosis only; training never sees them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "cluster_purity",
    "format_masks",
    "dino_collapse_experiment",
    "nearest_to_prototypes",
    "own_cluster_confidence",
    "sketch_neighbour_shares",
]


def cluster_purity(assignments, labels) -> float:
    """Fraction of samples whose cluster's majority class is their own class.

    Uses labels for *diagnosis only* (how well the unsupervised clusters match the hidden
    classes); training never sees them.

    Args:
        assignments: ``(N,)`` cluster ids.
        labels: ``(N,)`` class ids.
    """
    a = np.asarray(assignments).astype(np.int64).ravel()
    y = np.asarray(labels).astype(np.int64).ravel()
    if a.shape != y.shape or a.size == 0:
        raise ValueError(f"need two non-empty arrays of the same length, got {a.shape}, {y.shape}")
    correct = 0
    for cluster in np.unique(a):
        correct += np.bincount(y[a == cluster]).max()
    return float(correct / a.size)


def format_masks(masks: dict[str, object], *, row_names: Sequence[str] | None = None,
                 block: int | None = None) -> str:
    """Boolean ``(R, C)`` masks as text, side by side: ``1`` true, ``.`` false.

    For notebook 04, which prints the anchor, candidate and positive masks of the cluster
    contrastive loss. ``block`` puts a space every ``block`` columns (a crop-major candidate mask
    of ``B`` samples per crop reads as one group per crop).

    Args:
        masks: ``{title: (R, C) bool tensor or array}``, all with ``R`` rows.
        row_names: One name per row, printed on the left.
        block: Columns per group.

    Returns:
        The text, one line per row after a header line of titles.
    """
    arrays = [np.asarray(m.cpu() if hasattr(m, "cpu") else m).astype(bool) for m in masks.values()]
    n_rows = {a.shape[0] for a in arrays}
    if len(n_rows) != 1 or any(a.ndim != 2 for a in arrays):
        raise ValueError(f"need 2-D masks with the same number of rows, got {[a.shape for a in arrays]}")
    names = [str(r) for r in row_names] if row_names is not None else [""] * arrays[0].shape[0]
    if len(names) != arrays[0].shape[0]:
        raise ValueError(f"{len(names)} row names for {arrays[0].shape[0]} rows")
    left = max((len(n) for n in names), default=0)

    def cells(row) -> str:
        chars = ["1" if v else "." for v in row]
        if block:
            return " ".join("".join(chars[i:i + block]) for i in range(0, len(chars), block))
        return "".join(chars)

    widths = [max(len(title), len(cells(a[0]))) for title, a in zip(masks, arrays)]
    lines = [" " * left + "   " + "   ".join(t.ljust(w) for t, w in zip(masks, widths))]
    for i, name in enumerate(names):
        lines.append(name.rjust(left) + "   "
                     + "   ".join(cells(a[i]).ljust(w) for a, w in zip(arrays, widths)))
    return "\n".join(line.rstrip() for line in lines)


def nearest_to_prototypes(features, centroids, clusters: Sequence[int], k: int = 5) -> np.ndarray:
    """Indices of the ``k`` samples most similar (cosine) to each listed centroid.

    Args:
        features: ``(N, D)`` features.
        centroids: ``(K, D)`` prototypes.
        clusters: Which centroids (rows of ``centroids``).
        k: Samples per centroid.

    Returns:
        ``(len(clusters), k)`` int array, most similar first (ties by index).
    """
    import torch

    from amalib.metrics import cosine_scores

    scores = cosine_scores(torch.as_tensor(centroids)[list(clusters)], features)
    order = torch.sort(-scores, dim=1, stable=True).indices[:, :k]
    return order.numpy()


def own_cluster_confidence(features, centroids, assignments, temperature: float = 0.2):
    """Teacher's probability of its own cluster: ``softmax_k(t_i . mu_k / T)[cluster(i)]``.

    The quantity AMA's confidence filter thresholds (0.2 in the release) before a sample may
    anchor the cluster contrastive loss (see :class:`amalib.losses.ClusterContrastLoss`).

    Args:
        features: ``(N, D)`` L2-normalised teacher features.
        centroids: ``(K, D)`` L2-normalised prototypes.
        assignments: ``(N,)`` cluster of each sample.
        temperature: Prototype temperature.

    Returns:
        ``(N,)`` float numpy array in ``[0, 1]``.
    """
    import torch

    f = torch.as_tensor(features).float()
    c = torch.as_tensor(centroids).float()
    a = torch.as_tensor(assignments).long()
    probs = torch.softmax(f @ c.T / temperature, dim=1)
    return probs.gather(1, a[:, None])[:, 0].numpy()


def sketch_neighbour_shares(sketch_features, sketch_labels, photo_features, photo_labels, *,
                            k: int = 10) -> dict[str, float]:
    """Among each sketch's ``k`` nearest neighbours (cosine, among all sketches and photos but
    itself), the mean share of photos and of photos of the sketch's own class.

    What a UMAP map of the two domains suggests, counted in the full feature space: a small
    ``photo`` share means the domains sit apart; ``photo_same_class`` grows as sketches move
    next to the photos of their class.

    Returns:
        ``{"photo": float, "photo_same_class": float}``, both in ``[0, 1]``.
    """
    import torch

    from amalib.metrics import cosine_scores

    s, p = torch.as_tensor(sketch_features), torch.as_tensor(photo_features)
    sl, pl = torch.as_tensor(sketch_labels).long(), torch.as_tensor(photo_labels).long()
    scores = cosine_scores(s, torch.cat([s.to(p.dtype), p]))  # the metrics' scores and ties
    scores[torch.arange(len(s)), torch.arange(len(s))] = -float("inf")  # not itself
    order = torch.sort(-scores, dim=1, stable=True).indices[:, :k]
    is_photo = order >= len(s)
    labels = torch.cat([sl, pl])[order]
    same_class_photo = is_photo & (labels == sl[:, None])
    return {"photo": float(is_photo.float().mean()),
            "photo_same_class": float(same_class_photo.float().mean())}


def dino_collapse_experiment(*, center_momentum: float = 0.9, teacher_temp: float = 0.04,
                             steps: int = 200, out_dim: int = 64, seed: int = 0) -> dict:
    """A toy DINO run on random vectors, to watch what centring and sharpening prevent.

    A two-layer MLP student and its EMA teacher (momentum 0.95) learn with
    :class:`amalib.losses.DINOLoss` from two noisy views of 16-d Gaussian points.
    ``center_momentum=1.0`` keeps the centre at zero (no centring); a high ``teacher_temp``
    (e.g. 1.0) removes the sharpening. Two entropies of the teacher targets tell the two
    collapses of Caron et al. (ICCV 2021, Sec. 5.3) apart:

    * ``batch_entropy``, of the batch-mean target: low when every sample is sent to the same few
      output dimensions (collapse to one dimension, which centring prevents);
    * ``sample_entropy``, mean of each sample's target entropy: ``log(out_dim)`` when every
      target is uniform (collapse to uniform, which sharpening prevents).

    Returns:
        ``{"batch_entropy": (steps,), "sample_entropy": (steps,), "loss": (steps,),
        "max_entropy": log(out_dim)}``, numpy arrays.
    """
    import copy

    import torch
    from torch import nn

    from amalib.losses import DINOLoss
    from amalib.models import ema_update

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    points = torch.randn(512, 16, generator=gen)
    student = nn.Sequential(nn.Linear(16, 64), nn.GELU(), nn.Linear(64, out_dim))
    teacher = copy.deepcopy(student).requires_grad_(False)
    loss_fn = DINOLoss(out_dim, teacher_temp=teacher_temp, warmup_teacher_temp=teacher_temp,
                       n_epochs=1, center_momentum=center_momentum, n_global=2)
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-2)
    batch_entropy, sample_entropy, losses = [], [], []
    for _ in range(steps):
        idx = torch.randint(0, len(points), (64,), generator=gen)
        views = torch.cat([points[idx] + 0.3 * torch.randn(64, 16, generator=gen)
                           for _ in range(2)])
        with torch.no_grad():
            teacher_out = teacher(views)
            targets = torch.softmax((teacher_out - loss_fn.center) / teacher_temp, dim=1)
        loss = loss_fn(student(views), teacher_out, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ema_update(student, teacher, 0.95)
        mean_target = targets.mean(0)
        batch_entropy.append(float(-(mean_target * mean_target.clamp_min(1e-12).log()).sum()))
        sample_entropy.append(float(-(targets * targets.clamp_min(1e-12).log()).sum(1).mean()))
        losses.append(float(loss.detach()))
    return {"batch_entropy": np.array(batch_entropy), "sample_entropy": np.array(sample_entropy),
            "loss": np.array(losses), "max_entropy": float(np.log(out_dim))}
