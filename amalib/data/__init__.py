"""Data: benchmark registry and file lists, the embedded mini-benchmark, datasets, multi-crop.

Public names are re-exported lazily (PEP 562), so ``import amalib.data`` costs nothing and
``from amalib.data import generate_mini_benchmark`` does not import torch. Import the submodules
directly (``amalib.data.benchmarks``, ``.datasets``, ``.transforms``, ``.synthetic``,
``.prepare``) when you prefer explicit paths.
"""

from __future__ import annotations

from amalib._lazy import lazy_exports

_EXPORTS = {
    "benchmarks": (
        "BENCHMARKS", "BenchmarkSpec", "get_benchmark", "mini_benchmark_spec",
        "read_class_names", "read_file_list", "resolve_benchmark",
    ),
    "datasets": (
        "LabelledImages", "UnlabelledImages", "build_eval_sets", "build_pretrain_set",
        "build_training_sets", "collate_skip_broken",
    ),
    "transforms": (
        "MultiCropTransform", "ToNormalisedTensor", "collate_multicrop", "eval_transform"
    ),
    "synthetic": (
        "ensure_mini_benchmark", "generate_mini_benchmark", "mini_benchmark_classes",
        "mini_benchmark_examples", "render_photo", "render_sketch",
    ),
    "prepare": (
        "BenchmarkReport", "SplitReport", "build_file_lists", "check_benchmark", "prepare_main",
    ),
}  # fmt: skip
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
