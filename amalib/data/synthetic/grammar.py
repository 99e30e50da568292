"""The class grammar: class ``k`` is a body primitive with a part rule, and the three splits."""

from __future__ import annotations

__all__ = ["BODIES", "PARTS", "MAX_CLASSES", "class_name", "mini_benchmark_classes"]

BODIES = (
    "circle", "ellipse", "square", "bar", "triangle", "star", "hexagon", "cross",
    "crescent", "heart", "diamond", "arrow", "house", "trapezoid", "dome",
)  # fmt: skip
PARTS = (
    "plain",
    "legs",
    "spikes",
    "hole",
    "handle",
    "wheels",
    "ears",
    "antenna",
    "stacked",
    "twin",
)
MAX_CLASSES = len(BODIES) * len(PARTS)


def _class_parts(k: int) -> tuple[str, str]:
    if not 0 <= k < MAX_CLASSES:
        raise ValueError(f"class index {k} outside [0, {MAX_CLASSES})")
    b = k % len(BODIES)
    return BODIES[b], PARTS[(b + k // len(BODIES)) % len(PARTS)]


def class_name(k: int) -> str:
    """Name of grammar class ``k``: ``"<body>_<part>"``, e.g. ``class_name(0) == "circle_plain"``."""
    body, part = _class_parts(k)
    return f"{body}_{part}"


def mini_benchmark_classes(n_seen: int = 30, n_unseen: int = 10, n_pretrain: int = 20) -> dict:
    """The class names of each split, in grammar order (seen, then unseen, then pretrain).

    Returns:
        ``{"seen": [...], "unseen": [...], "pretrain": [...]}``; the three lists are disjoint.
    """
    if min(n_seen, n_unseen) < 1 or n_pretrain < 0:
        raise ValueError("need n_seen >= 1, n_unseen >= 1, n_pretrain >= 0")
    total = n_seen + n_unseen + n_pretrain
    if total > MAX_CLASSES:
        raise ValueError(f"the grammar has {MAX_CLASSES} classes; asked for {total}")
    names = [class_name(k) for k in range(total)]
    return {
        "seen": names[:n_seen],
        "unseen": names[n_seen : n_seen + n_unseen],
        "pretrain": names[n_seen + n_unseen :],
    }


def _class_indices(classes: dict) -> dict[str, int]:
    """Each class's index in the per-image seeds (seen, then unseen, then pretrain order)."""
    return {n: k for k, n in enumerate(classes["seen"] + classes["unseen"] + classes["pretrain"])}
