"""Training engine: configs, the AMA loop, checkpoints, distributed helpers, the demo.

Submodules are imported on demand so that ``import amalib.engine`` stays cheap:
:mod:`~amalib.engine.config`, :mod:`~amalib.engine.objective`, :mod:`~amalib.engine.trainer`,
:mod:`~amalib.engine.features`, :mod:`~amalib.engine.evaluate`, :mod:`~amalib.engine.state`,
:mod:`~amalib.engine.distributed`, :mod:`~amalib.engine.demo`, :mod:`~amalib.engine.ablation`,
:mod:`~amalib.engine.reference_step`.
"""

from __future__ import annotations

from amalib._lazy import lazy_exports

_EXPORTS = {
    "config": ("ConfigError", "load_config", "apply_overrides", "available_configs"),
    "objective": ("ObjectiveSchedule",),
    "trainer": ("Trainer", "TrainingDivergedError", "TrainingInterrupted", "train"),
    "features": ("FeatureSet", "extract_features"),
    "evaluate": ("evaluate_backbone", "load_trained_backbone", "test_features",
                 "adapt_batch_norm"),
    "state": ("save_checkpoint", "load_checkpoint", "export_teacher"),
    "demo": ("run_demo",),
    "ablation": ("run_ablation", "format_ablation", "load_ablation_results"),
    "reference_step": ("ama_step",),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
