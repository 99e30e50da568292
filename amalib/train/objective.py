"""Which loss terms are on at a given epoch, and with what weight (AMA's objective schedule).

``docs/method.md`` ("Total"): ``L = 2 L_SD^sketch + 1 L_SD^photo
+ w_cc(e) (L_CC^sketch + L_CC^photo) + 0.02 (L_SG^sketch + L_SG^photo) + 0.1 L_MA`` with
``w_cc`` ramping linearly from 0 to 0.5 between epochs 20 and 100, and SG and MA starting at
epoch 40 (Yin et al., AAAI 2024, and the authors' release). Every weight and start epoch is
configuration; every term can be switched off for ablations (its weight is then 0 at every
epoch).

Epochs are 0-based. Two readings of the CC ramp (``cc_ramp_reading``):

* ``"linear"`` (the default; docs/method.md's reading): ``w_cc(e) = 0`` for ``e <= cc_start_epoch``,
  ``cc_weight * (e - cc_start_epoch) / (cc_ramp_end_epoch - cc_start_epoch)`` in between,
  ``cc_weight`` from ``cc_ramp_end_epoch`` on. With the defaults ``w_cc(20) = 0``,
  ``w_cc(39) = 0.11875``, ``w_cc(40) = 0.125``, ``w_cc(60) = 0.25``, ``w_cc(100) = 0.5``.
* ``"release_line"``: the release's line as written (``main.py``, ``train``)::

      if epoch <= args.cc_startepoch:
          cur_cc_weight = args.cc_weightstart                       # 0.0
      elif epoch < args.sg_startepoch:                              # 40
          cur_cc_weight = args.ccweightstart + (args.cc_weightsature - args.cc_weightstart) * \
              ((epoch - args.cc_startepoch) / (args.sg_satureepoch - args.cc_startepoch))
      else:
          cur_cc_weight = args.cc_weightsature                      # 0.5

  It ramps only while ``epoch < sg_start_epoch`` and then jumps to the full weight. As
  published it cannot run: ``args.ccweightstart`` is misspelt (``cc_weightstart``) and
  ``args.sg_satureepoch`` does not exist, so epoch 21 raises. amalib reads the denominator as
  ``cc_ramp_end_epoch - cc_start_epoch`` (the release's ``cc_satureepoch``), the only existing
  argument of that shape: ``w_cc(20) = 0``, ``w_cc(39) = 0.11875``, then ``w_cc(40) =
  w_cc(60) = w_cc(100) = 0.5``. The two readings agree up to ``sg_start_epoch - 1`` and differ
  from ``sg_start_epoch`` on. (Were ``sg_start_epoch`` after ``cc_ramp_end_epoch``, the
  release's formula would exceed ``cc_weight``; amalib caps it at ``cc_weight``.)

A term is *active* from its start epoch, even while its ramped weight is still 0: k-means runs
from the first epoch at which CC or MA is active (:meth:`ObjectiveSchedule.needs_clustering`),
so prototypes exist when a weight turns positive. The trainer computes (and logs) a term only
at epochs where its weight is positive: at the start epoch of the linear CC ramp (weight 0)
k-means runs but the CC loss is not yet computed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from amalib.config import CC_RAMPS, ScheduleConfig

__all__ = ["CC_RAMPS", "ObjectiveSchedule", "TERMS"]

#: Keys of :meth:`ObjectiveSchedule.weights`, in table order.
TERMS = ("sd_sketch", "sd_photo", "cc", "ma", "sg")
# CC_RAMPS: the readings of the CC ramp (``loss.schedule.cc_ramp_reading``, defined with the
# config section); see the module docstring.


@dataclass(frozen=True)
class ObjectiveSchedule(ScheduleConfig):
    """Per-epoch weights of AMA's loss terms.

    Args:
        sd_sketch_weight: self-distillation weight of the sketch domain (release: 2.0).
        sd_photo_weight: self-distillation weight of the photo domain (release: 1.0).
        cc_weight: final weight of the cluster contrastive term (applies to the sum of both
            domains' L_CC).
        cc_start_epoch: first epoch at which the CC term is active (its weight is 0 there).
        cc_ramp_end_epoch: epoch from which the CC weight equals ``cc_weight``.
        ma_weight: weight of the mutual alignment term.
        ma_start_epoch: first epoch of the MA term.
        sg_weight: weight of the similarity guidance term (applies to the sum of both domains).
        sg_start_epoch: first epoch of the SG term.
        use_sd, use_cc, use_ma, use_sg: switch a term off (weight 0 everywhere) for ablations.
        cc_ramp_reading: ``"linear"`` (docs/method.md: 0 -> ``cc_weight`` between
            ``cc_start_epoch`` and ``cc_ramp_end_epoch``) or ``"release_line"`` (the release's
            line: the same ramp until ``sg_start_epoch``, then ``cc_weight``); see the module
            docstring.
    """

    # The fields, their defaults and their checks are the config section's
    # (amalib.config.ScheduleConfig, which amalib.config.validate builds); ``from_config``
    # builds an ObjectiveSchedule from a ``loss.schedule`` dict, refusing unknown keys.

    def to_config(self) -> dict[str, Any]:
        """The constructor arguments as a plain dict (round-trips through :meth:`from_config`)."""
        return dataclasses.asdict(self)

    def cc_ramp(self, epoch: int) -> float:
        """Fraction in ``[0, 1]`` of ``cc_weight`` reached at ``epoch`` (ignores ``use_cc``)."""
        if self.cc_ramp_reading == "release_line":
            if epoch <= self.cc_start_epoch:
                return 0.0
            if epoch >= self.sg_start_epoch or epoch >= self.cc_ramp_end_epoch:
                return 1.0
            return (epoch - self.cc_start_epoch) / (self.cc_ramp_end_epoch - self.cc_start_epoch)
        if epoch <= self.cc_start_epoch:
            return 0.0 if epoch < self.cc_ramp_end_epoch else 1.0
        if epoch >= self.cc_ramp_end_epoch:
            return 1.0
        return (epoch - self.cc_start_epoch) / (self.cc_ramp_end_epoch - self.cc_start_epoch)

    def active(self, epoch: int) -> dict[str, bool]:
        """Whether each term is computed at ``epoch`` (switched on and past its start epoch)."""
        return {
            "sd_sketch": self.use_sd,
            "sd_photo": self.use_sd,
            "cc": self.use_cc and epoch >= self.cc_start_epoch,
            "ma": self.use_ma and epoch >= self.ma_start_epoch,
            "sg": self.use_sg and epoch >= self.sg_start_epoch,
        }

    def weights(self, epoch: int) -> dict[str, float]:
        """Weight of each term at ``epoch`` (0-based); keys ``sd_sketch, sd_photo, cc, ma, sg``."""
        on = self.active(epoch)
        return {
            "sd_sketch": self.sd_sketch_weight if on["sd_sketch"] else 0.0,
            "sd_photo": self.sd_photo_weight if on["sd_photo"] else 0.0,
            "cc": self.cc_weight * self.cc_ramp(epoch) if on["cc"] else 0.0,
            "ma": self.ma_weight if on["ma"] else 0.0,
            "sg": self.sg_weight if on["sg"] else 0.0,
        }

    def needs_clustering(self, epoch: int) -> bool:
        """True when the CC or MA term is active at ``epoch`` (both need k-means prototypes)."""
        on = self.active(epoch)
        return on["cc"] or on["ma"]

    def combine(self, losses: Mapping[str, torch.Tensor], epoch: int) -> torch.Tensor:
        """Weighted sum ``sum_term weights(epoch)[term] * losses[term]``.

        Terms with weight 0 are skipped (they may be absent from ``losses``); an unknown key is
        an error. ``losses["cc"]`` and ``losses["sg"]`` are the sums over both domains.
        """
        unknown = sorted(set(losses) - set(TERMS))
        if unknown:
            raise KeyError(f"unknown loss term(s) {unknown}; expected a subset of {TERMS}")
        weights = self.weights(epoch)
        total = None
        for term in TERMS:
            if weights[term] == 0.0:
                continue
            if term not in losses:
                raise KeyError(f"loss term {term!r} has weight {weights[term]} at epoch {epoch}")
            part = weights[term] * losses[term]
            total = part if total is None else total + part
        if total is None:
            raise ValueError(f"every loss term has weight 0 at epoch {epoch}")
        return total

    def table(self, epochs: Sequence[int]) -> str:
        """A text table of the weights (and whether k-means runs) at the given epochs."""
        header = ["epoch", *TERMS, "clustering"]
        rows = []
        for epoch in epochs:
            w = self.weights(epoch)
            rows.append(
                [str(epoch), *(f"{w[t]:.4g}" for t in TERMS)]
                + ["yes" if self.needs_clustering(epoch) else "no"]
            )
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        lines = [
            "  ".join(h.rjust(wd) for h, wd in zip(header, widths)),
            "  ".join("-" * wd for wd in widths),
        ]
        lines += ["  ".join(c.rjust(wd) for c, wd in zip(r, widths)) for r in rows]
        return "\n".join(lines)

    def default_table_epochs(self, n_epochs: int) -> list[int]:
        """The epochs worth printing: 0, every start/ramp epoch and its predecessor, the last."""
        marks = {0, n_epochs - 1}
        for e in (
            self.cc_start_epoch,
            self.cc_ramp_end_epoch,
            self.ma_start_epoch,
            self.sg_start_epoch,
        ):
            marks.update({e - 1, e})
        marks.add((self.cc_start_epoch + self.cc_ramp_end_epoch) // 2)
        return sorted(e for e in marks if 0 <= e < n_epochs)
