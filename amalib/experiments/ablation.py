"""Ablation of AMA's terms on the embedded benchmark: SD only, +CC, +MA, +SG, over seeds.

Two reference rows frame the variants: the starting backbone (no training) and the **oracle**,
the same starting backbone fine-tuned for as many steps, on as many images per step, **with the
seen classes' labels** (cross-entropy on the seen-class sketches and photos,
:func:`amalib.train.supervised.train_supervised`). The oracle is the supervised ceiling of the
setting; AMA never sees those labels. :func:`gap_closed` says how much of the start → oracle gap
AMA closes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amalib.metrics import METRIC_KEYS

__all__ = ["ABLATIONS", "AMA", "LADDER", "ORACLE", "PACKAGED_RESULTS", "RESULTS_NAME", "ROWS",
           "STARTING_BACKBONE", "PairedDifference", "ablation_results", "ama_row_from_demo",
           "format_ablation", "format_differences", "gap_closed", "load_ablation_results",
           "paired_differences", "run_ablation", "t_quantile_975", "train_oracle"]

STARTING_BACKBONE = "starting backbone (no AMA training)"
AMA = "SD + CC + MA + SG (AMA)"
ORACLE = "oracle: seen-class labels, same steps (supervised ceiling, not AMA)"
#: The seed key of a row that trains nothing (the starting backbone): it has no seed.
UNTRAINED = "-"

# Each variant switches terms off through the config (loss.schedule.use_*), nothing else.
ABLATIONS: dict[str, list[str]] = {
    "SD only": ["loss.schedule.use_cc=false", "loss.schedule.use_ma=false",
                "loss.schedule.use_sg=false"],
    "SD + CC": ["loss.schedule.use_ma=false", "loss.schedule.use_sg=false"],
    "SD + CC + MA": ["loss.schedule.use_sg=false"],
    AMA: [],
}


#: The trained rows in the order in which each adds one term to the one before: (row, term added).
LADDER = (("SD only", None), ("SD + CC", "CC"), ("SD + CC + MA", "MA"), (AMA, "SG"))


#: The compact results file ``amalib ablate`` writes next to ``ablation.json``: the table plus
#: what made it (config, epochs, the command that regenerates it).
RESULTS_NAME = "ablation_results.json"
#: The copy of that file shipped as package data (``amalib/assets/``), read by notebook 06 and
#: the README: the ablation of the ``mini`` preset. Refresh it with
#: ``amalib ablate --out runs/ablation && cp runs/ablation/ablation_results.json
#: amalib/assets/ablation_mini.json``.
PACKAGED_RESULTS = "assets/ablation_mini.json"

#: Short names of the trained rows, for ``run_ablation(rows=...)`` and ``amalib ablate --rows``.
ROWS = {"sd": "SD only", "sd+cc": "SD + CC", "sd+cc+ma": "SD + CC + MA", "ama": AMA,
        "oracle": ORACLE}


def _comparable(cfg: dict) -> dict:
    """A resolved config as the ablation compares it: JSON types, without the seed and the
    evaluation cadence (which change the reported row in no way: evaluation draws no
    randomness from the training stream), and without the folder of a generated benchmark
    (``data.root`` when ``data.generate`` is set: the generator's settings, which are
    compared, determine every image)."""
    cfg = json.loads(json.dumps(cfg, default=str))
    cfg["train"].pop("seed", None)
    cfg.get("eval", {}).pop("every", None)
    if cfg.get("data", {}).get("generate"):
        cfg["data"].pop("root", None)
    return cfg


def _differences(a, b, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b))
                for d in _differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [f"{prefix[:-1]}: {a!r} != {b!r}"]


def ama_row_from_demo(run: str | Path, cfg: dict) -> dict:
    """The AMA row of one seed read from a finished ``amalib demo --out <run>``.

    The demo trains exactly the ablation's AMA row (same config and seed; it also evaluates
    after every epoch, which draws nothing from the training stream). The run must be finished
    (``summary.json`` exists) and its ``train/config.yaml`` must equal ``cfg`` up to
    ``eval.every`` and the folder of a generated benchmark; otherwise a :class:`~amalib.config.ConfigError` names the keys.
    """
    import yaml

    from amalib.config import ConfigError

    run = Path(run)
    seed = cfg["train"]["seed"]
    summary, used = run / "summary.json", run / "train" / "config.yaml"
    if not summary.exists() or not used.exists():
        raise FileNotFoundError(
            f"{run} is not a finished demo ({summary.name} or train/config.yaml is missing); "
            f"run `amalib demo --seed {seed} --out {run}` first, or leave out the AMA-runs "
            "option to train the row here")
    trained = yaml.safe_load(used.read_text())
    if trained["train"]["seed"] != seed:
        raise ConfigError(f"{used} was trained with seed {trained['train']['seed']}, not {seed}")
    diff = _differences(_comparable(trained), _comparable(cfg))
    if diff:
        raise ConfigError(f"{used} differs from the ablation's config: " + "; ".join(diff[:5]))
    after = json.loads(summary.read_text())["after"]
    return {k: float(after[k]) for k in METRIC_KEYS}


def _record(table_file: Path, name: str, seed: str, metrics: dict) -> dict:
    """Add one cell to ``ablation.json`` and return the whole table.

    The file is re-read and rewritten under an exclusive lock (``.ablation.lock`` beside it), so
    several ``amalib ablate`` processes with different ``--rows`` or ``--seeds`` can fill one
    table at once (one per GPU, or two on a CPU) without losing each other's rows.
    """
    import fcntl

    with open(table_file.parent / ".ablation.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            table = json.loads(table_file.read_text()) if table_file.exists() else {}
            table.setdefault(name, {})[seed] = {k: float(metrics[k]) for k in METRIC_KEYS}
            order = [STARTING_BACKBONE, *ABLATIONS, ORACLE]
            table = {n: table[n] for n in [*order, *sorted(set(table) - set(order))] if n in table}
            tmp = table_file.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(table, indent=2))
            tmp.replace(table_file)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return table


def run_ablation(out: str | Path = "runs/ablation", *, seeds=(0, 1, 2), config: str = "mini",
                 overrides=(), rows=tuple(ROWS), ama_runs: str | None = None,
                 progress: bool = False, log=print) -> dict:
    """Train every variant for every seed; returns ``{variant: {seed: final metrics}}``.

    The first row, :data:`STARTING_BACKBONE`, is the configured backbone evaluated before any
    training (seed :data:`UNTRAINED`, ``"-"``): the baseline every variant is compared with. Results are also
    written to ``<out>/ablation.json``; finished runs found there are reused, so an interrupted
    ablation continues where it stopped. ``rows`` (keys of :data:`ROWS`) limits which trained
    rows run, e.g. ``("oracle",)``; rows already in ``ablation.json`` stay in the table.
    Several processes may fill one ``out`` at once with different rows or seeds (the table is
    updated under a file lock). ``ama_runs`` (a path with ``{seed}``, e.g. ``"runs/demo_s{seed}"``) takes the AMA row from
    finished ``amalib demo`` runs instead of training it again (:func:`ama_row_from_demo`).
    """
    from amalib.config import ConfigError, load_config

    unknown = sorted(set(rows) - set(ROWS))
    if unknown:
        raise ConfigError(f"unknown ablation rows {unknown}; choose from {sorted(ROWS)}")
    wanted = {ROWS[r] for r in rows}
    from amalib.train.supervised import SUPERVISED_KEYS
    from amalib.train.trainer import Trainer

    base = load_config(config, list(overrides))
    if ORACLE in wanted and not set(SUPERVISED_KEYS) <= set(base.get("pretrain", {})):
        raise ConfigError(f"the oracle row reads the pretrain section ({', '.join(SUPERVISED_KEYS)}"
                          f") of the config, which {config!r} lacks; leave it out with --rows")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table_file = out / "ablation.json"
    # Rows found in ablation.json are reused only for the same config: ablation_config.json
    # holds the resolved config (seed aside) that the table was made with.
    config_file = out / "ablation_config.json"
    resolved = _comparable(base)
    # (_comparable again on the file: one written before a rule of the comparison changed
    # still compares under today's rules.)
    if config_file.exists() and _comparable(json.loads(config_file.read_text())) != resolved:
        raise ConfigError(f"{out} holds an ablation made with another config (see "
                          f"{config_file}); choose another --out or delete it")
    config_file.write_text(json.dumps(resolved, indent=2))
    table = json.loads(table_file.read_text()) if table_file.exists() else {}
    if ama_runs is not None and AMA in wanted:  # checked before anything trains
        for seed in seeds:
            if str(seed) in table.get(AMA, {}):
                continue
            try:
                run = Path(ama_runs.format(seed=seed))
            except (KeyError, IndexError, ValueError) as err:
                raise ConfigError(f"--ama-runs {ama_runs}: the only placeholder is {{seed}}, e.g. "
                                  f"runs/demo_s{{seed}} ({type(err).__name__}: {err})") from None
            ama_row_from_demo(run, load_config(config, [*overrides, *ABLATIONS[AMA],
                                                        f"train.seed={seed}"]))
    if STARTING_BACKBONE not in table:
        # The row every variant starts from: the configured backbone, evaluated untrained (the
        # same for every seed, so once).
        cfg = load_config(config, [*overrides, f"train.seed={seeds[0]}"])
        trainer = Trainer(cfg, out / "starting_backbone", progress=progress,
                          log=lambda _line: None)
        log(f"ablation: {STARTING_BACKBONE} ({trainer.pretrained or 'random init'})")
        table = _record(table_file, STARTING_BACKBONE, UNTRAINED, trainer.evaluate())
    for name, switches in ABLATIONS.items():
        if name not in wanted:
            continue
        for seed in seeds:
            if str(seed) in table.get(name, {}):
                continue
            cfg = load_config(config, [*overrides, *switches, f"train.seed={seed}"])
            if name == AMA and ama_runs is not None:
                run = Path(ama_runs.format(seed=seed))
                log(f"ablation: {name}, seed {seed} <- {run} (amalib demo)")
                table = _record(table_file, name, str(seed), ama_row_from_demo(run, cfg))
                continue
            cfg["eval"]["every"] = cfg["train"]["epochs"]  # final epoch only
            run = out / f"{name.split(' (')[0].replace(' + ', '+').replace(' ', '_')}_seed{seed}"
            log(f"ablation: {name}, seed {seed} -> {run}")
            trainer = Trainer(cfg, run, progress=progress, log=lambda _line: None)
            trainer.fit()
            table = _record(table_file, name, str(seed), trainer.history[-1]["eval"])
    for seed in seeds if ORACLE in wanted else ():
        if str(seed) in table.get(ORACLE, {}):
            continue
        cfg = load_config(config, [*overrides, f"train.seed={seed}"])
        log(f"ablation: {ORACLE}, seed {seed}")
        result = train_oracle(cfg, out / f"oracle_seed{seed}", progress=progress)
        table = _record(table_file, ORACLE, str(seed), result)
    results = ablation_results(table, config=config, overrides=overrides,
                               epochs=int(base["train"]["epochs"]), out=out)
    (out / RESULTS_NAME).write_text(json.dumps(results, indent=1) + "\n")
    return table


def ablation_results(table: dict, *, config: str, overrides=(), epochs: int,
                     out: str | Path = "runs/ablation") -> dict:
    """The compact, self-describing results of an ablation (what ``ablation_results.json`` holds).

    Returns:
        ``{"config", "overrides", "epochs", "seeds", "command", "table",
        "paired_differences"}``: ``table`` is ``{row: {seed: {metric: value}}}`` as returned by
        :func:`run_ablation`, ``command`` the ``amalib ablate`` line that regenerates it,
        ``paired_differences`` per metric the :func:`paired_differences` of the table (each
        added term's seed-paired effect and its 95 % interval).
    """
    seeds = sorted({s for runs in table.values() for s in runs if s != UNTRAINED}, key=int)
    command = (f"amalib ablate --config {config} --out {Path(out).as_posix()} --seeds "
               + " ".join(seeds) + "".join(f" --set {o}" for o in overrides))
    rounded = {row: {seed: {k: round(float(v), 6) for k, v in metrics.items()}
                     for seed, metrics in runs.items()} for row, runs in table.items()}
    return {"config": str(config), "overrides": list(overrides), "epochs": int(epochs),
            "seeds": [int(s) for s in seeds], "command": command, "table": rounded,
            # Each term's seed-paired effect on every metric, with its 95 % interval.
            "paired_differences": {key: [d.to_dict() for d in paired_differences(rounded, key)]
                                   for key in METRIC_KEYS}}


def load_ablation_results(path: str | Path | None = None) -> dict:
    """Read ``ablation_results.json`` (default: the copy amalib ships, :data:`PACKAGED_RESULTS`).

    Args:
        path: A run's ``<out>/ablation_results.json``, or ``None`` for the packaged results.

    Returns:
        The dict of :func:`ablation_results`; ``results["table"]`` goes to
        :func:`format_ablation`.
    """
    if path is None:
        from importlib import resources

        text = (resources.files("amalib") / PACKAGED_RESULTS).read_text()
    else:
        text = Path(path).read_text()
    results = json.loads(text)
    missing = {"config", "epochs", "command", "table"} - set(results)
    if missing:
        raise ValueError(f"{path or PACKAGED_RESULTS} is not an ablation results file "
                         f"(missing {sorted(missing)})")
    return results


def train_oracle(cfg: dict, run_dir: str | Path, *, progress: bool = False) -> dict:
    """The oracle row for one seed: returns the unseen-class retrieval metrics after training.

    The starting backbone of ``cfg`` (``model.pretrained``) is fine-tuned with cross-entropy on
    the **labelled** seen-class training sketches and photos, for ``train.epochs`` x the AMA
    run's steps per epoch, on ``2 x data.batch_size`` images per step (as many as AMA's
    sketches + photos), drawn uniformly from both lists together (so the mix of domains follows
    the lists' sizes: half and half on the mini-benchmark).
    AdamW with ``pretrain.lr`` scaled linearly from ``pretrain.batch_size`` to that batch, and
    ``pretrain.weight_decay``. Nothing is selected: the last step is evaluated.
    """
    from amalib.data.benchmarks import read_file_list
    from amalib.data.datasets import LabelledImages
    from amalib.data.transforms import supervised_transform
    from amalib.train.supervised import train_supervised
    from amalib.train.trainer import Trainer

    trainer = Trainer(cfg, run_dir, progress=progress, log=lambda _line: None)
    pcfg, dcfg, spec = cfg["pretrain"], cfg["data"], trainer.spec
    transform = supervised_transform(int(cfg["model"]["img_size"]),
                                     scale=tuple(dcfg["photo_crops"]["global_scale"]))
    lists = [trainer.root / spec.sketch_train, trainer.root / spec.photo_train]
    sets = [LabelledImages(trainer.root / spec.image_root, f, transform,
                           layout=spec.layout(trainer.root)) for f in lists]
    n_classes = 1 + max(label for f in lists for _, label in read_file_list(f))
    batch = 2 * int(dcfg["batch_size"])
    backbone = trainer.teacher.backbone  # what trainer.evaluate() reads
    backbone.requires_grad_(True)  # a teacher is frozen for AMA; the oracle trains it directly
    train_supervised(
        backbone, sets, n_classes,
        steps=trainer.epochs * trainer.steps_per_epoch, batch_size=batch,
        lr=float(pcfg["lr"]) * batch / int(pcfg["batch_size"]),
        weight_decay=float(pcfg["weight_decay"]), seed=int(cfg["train"]["seed"]),
        num_workers=int(dcfg["num_workers"]), device=trainer.device, progress=progress,
        log=lambda _line: None,
    )
    return trainer.evaluate()


def gap_closed(table: dict, key: str = "mAP@all") -> float | None:
    """``(AMA - start) / (oracle - start)`` of the seed means, or ``None`` without both rows."""
    if not all(name in table for name in (STARTING_BACKBONE, AMA, ORACLE)):
        return None
    mean = {name: float(np.mean([r[key] for r in table[name].values()]))
            for name in (STARTING_BACKBONE, AMA, ORACLE)}
    gap = mean[ORACLE] - mean[STARTING_BACKBONE]
    return (mean[AMA] - mean[STARTING_BACKBONE]) / gap if gap > 0 else None


# Two-sided 95 % quantiles of Student's t, t_{0.975}(df), for df = 1..30 (beyond: the
# Cornish-Fisher expansion around the normal quantile, within 1e-4 of the exact value).
_T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
         2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
         2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)


def t_quantile_975(df: int) -> float:
    """``t_{0.975}`` of Student's t with ``df`` degrees of freedom (the 95 % two-sided value)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class PairedDifference:
    """What adding one term changes, seed by seed: ``row - base`` on the seeds both rows have.

    Attributes:
        term: The term added (``CC``, ``MA`` or ``SG``).
        base, row: The rows compared (``row`` = ``base`` + ``term``).
        metric: The metric compared.
        seeds: The seeds both rows have, in increasing order.
        differences: ``row - base`` per seed.
        mean: Their mean.
        low, high: The 95 % t interval of the mean difference (``mean -+ t_{0.975}(n-1) s /
            sqrt(n)``); ``nan`` with fewer than 2 seeds.
    """

    term: str
    base: str
    row: str
    metric: str
    seeds: tuple[str, ...]
    differences: tuple[float, ...]
    mean: float
    low: float
    high: float

    @property
    def resolved(self) -> bool:
        """True when the interval excludes zero (the term's effect is resolved from noise)."""
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict:
        return {"term": self.term, "base": self.base, "row": self.row, "metric": self.metric,
                "seeds": [int(s) for s in self.seeds],
                "differences": [round(d, 6) for d in self.differences],
                "mean": round(self.mean, 6), "ci95": [round(self.low, 6), round(self.high, 6)],
                "resolved": self.resolved}


def paired_differences(table: dict, metric: str = "mAP@all") -> list[PairedDifference]:
    """For each term of :data:`LADDER`, the seed-paired difference it makes and its 95 % interval.

    Seeds pair the runs: the same seed draws the same batches and initial head in both rows, so
    the difference of a pair removes most of the seed-to-seed noise that separate means carry.
    Rows that are absent are skipped; seeds present in only one of the two rows are left out.
    """
    out = []
    for (base, _), (row, term) in zip(LADDER, LADDER[1:]):
        if base not in table or row not in table:
            continue
        seeds = sorted(set(table[base]) & set(table[row]) - {UNTRAINED}, key=int)
        diffs = [float(table[row][s][metric]) - float(table[base][s][metric]) for s in seeds]
        n = len(diffs)
        mean = math.fsum(diffs) / n if n else float("nan")
        if n >= 2:
            sd = math.sqrt(math.fsum((d - mean) ** 2 for d in diffs) / (n - 1))
            half = t_quantile_975(n - 1) * sd / math.sqrt(n)
            low, high = mean - half, mean + half
        else:
            low = high = float("nan")
        out.append(PairedDifference(term, base, row, metric, tuple(seeds), tuple(diffs), mean,
                                    low, high))
    return out


def format_differences(table: dict, metric: str = "mAP@all") -> str:
    """Markdown table of :func:`paired_differences`: each term's effect, its interval, whether
    it is resolved from zero."""
    lines = [f"| term added | seeds | mean difference in {metric} | 95 % interval (paired t) "
             "| resolved from zero |", "|---|---|---|---|---|"]
    for d in paired_differences(table, metric):
        interval = (f"[{d.low:+.4f}, {d.high:+.4f}]" if len(d.seeds) > 1
                    else "(one seed: none)")
        verdict = ("no" if not d.resolved else "yes, it helps" if d.mean > 0
                   else "yes, it hurts")
        lines.append(f"| {d.term} ({d.base} -> {d.row}) | {len(d.seeds)} | {d.mean:+.4f} | "
                     f"{interval} | {verdict} |")
    return "\n".join(lines)


def format_ablation(table: dict) -> str:
    """Markdown table: mean ± sample standard deviation over seeds of each metric (the value
    alone for a row with one run)."""
    lines = ["| variant | seeds | " + " | ".join(METRIC_KEYS) + " |",
             "|---|---|" + "---|" * len(METRIC_KEYS)]
    for name, runs in table.items():
        cells = []
        for key in METRIC_KEYS:
            values = np.array([r[key] for r in runs.values()])
            # One run has no spread to report: its value alone, not "± 0".
            cells.append(f"{values.mean():.4f} ± {values.std(ddof=1):.4f}" if len(values) > 1
                         else f"{values[0]:.4f}")
        seeds = "–" if list(runs) == [UNTRAINED] else str(len(runs))
        lines.append(f"| {name} | {seeds} | " + " | ".join(cells) + " |")
    closed = gap_closed(table)
    if closed is not None:
        lines.append(f"\nAMA closes {closed:.0%} of the starting backbone -> oracle gap in "
                     "mAP@all (seed means).")
    return "\n".join(lines)
