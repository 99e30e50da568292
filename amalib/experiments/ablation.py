"""Ablation of AMA's terms on the embedded benchmark: SD only, +CC, +MA, +SG, over seeds.

Two reference rows frame the variants: the starting backbone (no training) and the **oracle**,
the same starting backbone fine-tuned for as many steps, on as many images per step, **with the
seen classes' labels** (cross-entropy on the seen-class sketches and photos,
:func:`amalib.train.supervised.train_supervised`). The oracle is the supervised ceiling of the
setting; AMA never sees those labels. :func:`gap_closed` says how much of the start → oracle gap
AMA closes.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amalib import distributed as du
from amalib.metrics import METRIC_KEYS

__all__ = ["ABLATIONS", "AMA", "LADDER", "ORACLE", "PACKAGED_RESULTS", "RESULTS_NAME", "ROWS",
           "STARTING_BACKBONE", "PairedDifference", "ablation_results", "ama_row_from_demo",
           "format_ablation", "format_differences", "gap_closed", "load_ablation_results",
           "paired_differences", "run_ablation", "shared_epochs", "t_quantile_975", "train_oracle"]

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
    from amalib.config import upgrade

    # (upgrade: a config written before a key existed compares with its default)
    cfg = json.loads(json.dumps(upgrade(cfg), default=str))
    cfg["train"].pop("seed", None)
    cfg.get("eval", {}).pop("every", None)
    if cfg.get("data", {}).get("generate"):
        cfg["data"].pop("root", None)
    return cfg


def _run_name(name: str, seed: int) -> str:
    """The folder of one row's run for one seed, e.g. ``SD+CC_seed0``."""
    return f"{name.split(' (')[0].replace(' + ', '+').replace(' ', '_')}_seed{seed}"


def shared_epochs(a: dict, b: dict) -> int:
    """How many leading epochs two resolved configs train identically.

    Two runs draw the same batches, augmentations and k-means seeds in every epoch (the random
    streams are re-seeded per epoch from ``train.seed`` and the epoch number), so they train an
    epoch identically when they enter it in the same state with the same objective. This
    counts the epochs, from the first, in which the configs' objective schedules give every
    term the same weight and agree on whether k-means runs; the configs must be equal
    otherwise, up to the ``use_*`` switches and ``eval.every`` (which draws no randomness), or
    the answer is 0.

    On ``mini`` every row shares epoch 0 (the head warm-up, SD only) and the three rows with
    CC share epoch 1 (k-means runs, CC's weight is still 0), so an ablation seed trains 19
    epochs instead of 24; ``tests/experiments/test_ablation.py`` checks that a row resumed
    from another's state ends with the same weights as when trained alone.
    """
    from amalib.train.objective import ObjectiveSchedule

    def rest(cfg: dict) -> dict:
        cfg = json.loads(json.dumps(cfg, default=str))
        for key in [k for k in cfg["loss"]["schedule"] if k.startswith("use_")]:
            del cfg["loss"]["schedule"][key]
        cfg.get("eval", {}).pop("every", None)
        return cfg

    if rest(a) != rest(b):
        return 0
    sa, sb = (ObjectiveSchedule.from_config(c["loss"]["schedule"]) for c in (a, b))
    n = 0
    for epoch in range(int(a["train"]["epochs"])):
        if sa.weights(epoch) != sb.weights(epoch) or \
                sa.needs_clustering(epoch) != sb.needs_clustering(epoch):
            break
        n += 1
    return n


def _kept_state_fits(path: Path, cfg: dict, epochs: int, log) -> bool:
    """Whether ``path`` (another row's ``checkpoint_epoch{n}.pth``) holds the state after exactly
    ``epochs`` epochs of a run that trained them as ``cfg`` would, in a world of this size.

    A file that is missing, unreadable, from a run with other settings (an earlier ablation in
    the same folder, another amalib) or another number of processes is not used: the row then
    trains those epochs itself."""
    if not path.is_file():
        return False
    from amalib.checkpoint_io import load_checkpoint
    from amalib.config import upgrade
    from amalib.errors import AmalibError

    try:
        state = load_checkpoint(path, map_location="cpu", expect="ama")
    except (AmalibError, OSError, RuntimeError, ValueError) as err:
        log(f"ablation: not resuming from {path} ({type(err).__name__}: {err})")
        return False
    fits = (int(state.get("epoch", -1)) == epochs and int(state.get("step", -1)) == 0
            and state.get("world_size") == du.world_size()
            and shared_epochs(cfg, upgrade(state["config"])) >= epochs)
    if not fits:
        log(f"ablation: not resuming from {path}: another run's state (settings, epoch or "
            "number of processes differ)")
    return fits


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

    Seeds run one after the other, all rows of a seed before the next. Rows share their first
    epochs (:func:`shared_epochs`: every row trains epoch 0 as SD only, and the rows with CC
    train epoch 1 alike): the first row to train keeps its state after those epochs
    (``checkpoint_epoch{n}.pth`` in its run folder) and the later rows resume from it, with the
    same result as training them alone in fewer epochs (19 instead of 24 per seed on ``mini``).
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
    for seed in seeds:  # seed by seed, so that paired rows accumulate
        todo = [name for name in ABLATIONS if name in wanted and str(seed) not in table.get(name, {})]
        # Each row's config for this seed, loaded once (the donor search and `keep` read them).
        configs = {name: load_config(config, [*overrides, *switches, f"train.seed={seed}"])
                   for name, switches in ABLATIONS.items()}
        for i, name in enumerate(todo):
            cfg = configs[name]
            if name == AMA and ama_runs is not None:
                run = Path(ama_runs.format(seed=seed))
                log(f"ablation: {name}, seed {seed} <- {run} (amalib demo)")
                table = _record(table_file, name, str(seed), ama_row_from_demo(run, cfg))
                continue
            # Final epoch only, on a copy: `configs` is what the later rows compare with.
            cfg = copy.deepcopy(cfg)
            cfg["eval"]["every"] = cfg["train"]["epochs"]
            run = out / _run_name(name, seed)
            # The longest prefix of epochs another row of this seed has already trained exactly
            # as this one would (kept as checkpoint_epoch{n}.pth): resume from it.
            start, donor = 0, None
            for other in ABLATIONS:
                if other == name:
                    continue
                for n in range(shared_epochs(cfg, configs[other]), start, -1):
                    kept = out / _run_name(other, seed) / f"checkpoint_epoch{n}.pth"
                    if _kept_state_fits(kept, cfg, n, log):
                        start, donor = n, kept
                        break
            start, donor = du.broadcast_object((start, donor))  # one choice on every rank
            # What the rows still to train share with this one: keep those states.
            keep = {shared_epochs(cfg, configs[later]) for later in todo[i + 1:]}
            keep = sorted(n for n in keep if start < n < int(cfg["train"]["epochs"]))
            shared = "epoch 0" if start == 1 else f"epochs 0-{start - 1}"
            log(f"ablation: {name}, seed {seed} -> {run}" + (
                f" ({shared} as trained in {donor.parent.name})" if donor else ""))
            if du.is_main_process():
                (run / "metrics.jsonl").unlink(missing_ok=True)  # a fresh run, not an append
            trainer = Trainer(cfg, run, resume=donor, progress=progress, log=lambda _line: None)
            if donor is not None:
                # The shared epochs' records (identical for both rows but the times) go to the
                # run's metrics.jsonl too, each saying in which run it was trained.
                trainer.history = [{**r, "trained_in": r.get("trained_in", donor.parent.name)}
                                   for r in trainer.history]
                if du.is_main_process():
                    run.mkdir(parents=True, exist_ok=True)
                    with open(run / "metrics.jsonl", "w") as f:
                        f.writelines(json.dumps(record) + "\n" for record in trainer.history)
            trainer.fit(keep_after=keep)
            table = _record(table_file, name, str(seed), trainer.history[-1]["eval"])
        if du.is_main_process() and all(str(seed) in table.get(r, {}) for r in ABLATIONS):
            # Every row of the seed is in the table: the kept states have served.
            for kept in out.glob(f"*_seed{seed}/checkpoint_epoch*.pth"):
                kept.unlink()
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
