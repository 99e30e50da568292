"""Training: the AMA step, the loop around it, its schedules, checkpoints and pretraining.

:mod:`~amalib.train.step` computes AMA's terms for one batch and takes one optimiser step;
:mod:`~amalib.train.trainer` builds the networks, data and optimiser from a config and runs the
epochs (:meth:`~amalib.train.trainer.Trainer.fit`); :mod:`~amalib.train.objective` says which
term is on at which epoch; :mod:`~amalib.train.state` holds RNG states and the teacher export;
:mod:`~amalib.train.supervised` is the supervised pretraining of the embedded backbone.
Submodules are imported on demand (``import amalib.train`` stays cheap).
"""

from __future__ import annotations

from amalib._lazy import lazy_exports

_EXPORTS = {
    "objective": ("ObjectiveSchedule", "TERMS"),
    "step": ("Objective", "Outputs", "ama_losses", "forward"),
    "interrupt": ("StopRequest", "TrainingDivergedError", "TrainingInterrupted"),
    "trainer": ("Trainer", "train"),
    "state": ("seed_everything", "export_teacher", "export_trained_model"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
