"""Ablation of AMA's terms on the embedded benchmark: SD only, +CC, +MA, +SG, over seeds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from amalib.metrics import METRIC_KEYS

__all__ = ["ABLATIONS", "STARTING_BACKBONE", "run_ablation", "format_ablation"]

STARTING_BACKBONE = "starting backbone (no AMA training)"

# Each variant switches terms off through the config (loss.schedule.use_*), nothing else.
ABLATIONS: dict[str, list[str]] = {
    "SD only": ["loss.schedule.use_cc=false", "loss.schedule.use_ma=false",
                "loss.schedule.use_sg=false"],
    "SD + CC": ["loss.schedule.use_ma=false", "loss.schedule.use_sg=false"],
    "SD + CC + MA": ["loss.schedule.use_sg=false"],
    "SD + CC + MA + SG (AMA)": [],
}


def run_ablation(out: str | Path = "runs/ablation", *, seeds=(0, 1, 2), config: str = "mini",
                 overrides=(), progress: bool = False, log=print) -> dict:
    """Train every variant for every seed; returns ``{variant: {seed: final metrics}}``.

    The first row, :data:`STARTING_BACKBONE`, is the configured backbone evaluated before any
    training (seed ``"-"``): the baseline every variant is compared with. Results are also
    written to ``<out>/ablation.json``; finished runs found there are reused, so an interrupted
    ablation continues where it stopped.
    """
    from amalib.engine.config import load_config
    from amalib.engine.trainer import Trainer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table_file = out / "ablation.json"
    table = json.loads(table_file.read_text()) if table_file.exists() else {}
    if STARTING_BACKBONE not in table:
        # The row every variant starts from: the configured backbone, evaluated untrained (the
        # same for every seed, so once).
        cfg = load_config(config, [*overrides, f"train.seed={seeds[0]}"])
        trainer = Trainer(cfg, out / "starting_backbone", progress=progress,
                          log=lambda _line: None)
        log(f"ablation: {STARTING_BACKBONE} ({trainer.pretrained or 'random init'})")
        start = trainer.evaluate()
        table = {STARTING_BACKBONE: {"-": {k: start[k] for k in METRIC_KEYS}}, **table}
        table_file.write_text(json.dumps(table, indent=2))
    for name, switches in ABLATIONS.items():
        for seed in seeds:
            if str(seed) in table.get(name, {}):
                continue
            cfg = load_config(config, [*overrides, *switches, f"train.seed={seed}"])
            cfg["eval"]["every"] = cfg["train"]["epochs"]  # final epoch only
            run = out / f"{name.split(' (')[0].replace(' + ', '+').replace(' ', '_')}_seed{seed}"
            log(f"ablation: {name}, seed {seed} -> {run}")
            trainer = Trainer(cfg, run, progress=progress, log=lambda _line: None)
            trainer.fit()
            final = trainer.history[-1]["eval"]
            table.setdefault(name, {})[str(seed)] = {k: final[k] for k in METRIC_KEYS}
            table_file.write_text(json.dumps(table, indent=2))
    return table


def format_ablation(table: dict) -> str:
    """Markdown table: mean ± sample standard deviation over seeds of each metric."""
    lines = ["| variant | seeds | " + " | ".join(METRIC_KEYS) + " |",
             "|---|---|" + "---|" * len(METRIC_KEYS)]
    for name, runs in table.items():
        cells = []
        for key in METRIC_KEYS:
            values = np.array([r[key] for r in runs.values()])
            cells.append(f"{values.mean():.4f} ± {values.std(ddof=1) if len(values) > 1 else 0:.4f}")
        lines.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
