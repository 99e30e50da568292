"""Helpers of the notebook series ``notebooks/01_data.ipynb`` … ``06_retrieval_evaluation.ipynb``.

The notebooks show and explain; what they compute lives here or elsewhere in amalib and is
unit-tested (``tests/test_tutorial.py``). This module gathers the pieces that only a tutorial
needs:

* the working directory and the **profile switch** (``cpu-mini``: the embedded mini-benchmark on
  the CPU, what CI executes; ``gpu-real``: a real benchmark with the official DINO ViT-B/16 weights
  on a GPU), with loud errors that name the missing files and how to get them;
* "load the trained run if present, else train a short one" (notebooks 05 and 06);
* small diagnostics of AMA's pieces (cluster purity, prototype neighbours, the teacher's
  confidence in its own cluster, a toy DINO collapse experiment) and the figures that draw them.

Reference: Yin et al., "Asymmetric Mutual Alignment for Unsupervised Zero-Shot Sketch-Based Image
Retrieval", AAAI 2024; DINO: Caron et al., ICCV 2021.

Importing this module is cheap: torch, matplotlib and the engine are imported inside functions.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "PROFILES",
    "Profile",
    "ProfileUnavailableError",
    "cluster_purity",
    "dino_collapse_experiment",
    "enter_project_root",
    "eval_sets",
    "INSTALL_SOURCE",
    "find_project_root",
    "find_trained_run",
    "gpu_name",
    "load_or_train",
    "load_starting_backbone",
    "missing_gpu_profile_files",
    "nearest_to_prototypes",
    "own_cluster_confidence",
    "plot_attention",
    "plot_distance_matrices",
    "plot_image_rows",
    "plot_multicrop",
    "print_relative",
    "select_profile",
    "setup_notebook",
    "sketch_neighbour_shares",
    "show_as_jpeg",
    "to_image",
    "train_steps",
    "work_folder",
]

#: The profiles a notebook can select with its ``PROFILE`` switch. ``auto`` is the embedded
#: mini-benchmark on the GPU when one is present (``gpu-mini``), else on the CPU (``cpu-mini``).
PROFILES = ("auto", "cpu-mini", "gpu-mini", "gpu-real")

#: Where ``pip install amalib[full]`` comes from in the notebooks' install cell (Colab). The one
#: place to change for a fork or a wheel: ``"amalib[full] @ https://…/amalib-0.1.0-py3-none-any.whl"``.
#: ``tests/test_notebooks_clean.py`` checks that every notebook's install cell uses this value.
INSTALL_SOURCE = "amalib[full] @ git+https://github.com/amalib/amalib"

#: Environment variable naming the writable folder for ``data/`` and ``runs/`` when the notebooks
#: run outside a checkout (a pip install, Colab); default: the working directory if writable,
#: else ``~/amalib``.
HOME_VARIABLE = "AMALIB_HOME"

#: Where the notebooks write their runs (relative to the project root), one folder per profile.
TUTORIAL_RUNS = Path("runs/tutorial")

#: The short run of the ``cpu-mini`` profile (notebooks 05 and 06): 3 epochs of 4 steps of
#: 16 sketches + 16 photos — every AMA term is on in the last epoch (``mini.yaml`` starts CC at
#: epoch 1, MA and SG at epoch 2). Minutes on two CPU cores; enough to watch the loop, not to
#: reach the demo's numbers (``amalib demo``: 6 full epochs).
CPU_SHORT_RUN = (
    "train.epochs=3",
    "train.max_steps_per_epoch=4",
    "data.batch_size=16",
)

#: The short run of the ``gpu-real`` profile: the release's recipe with its schedule compressed
#: into 3 epochs of at most 200 steps, to see every term at work. The paper's run is
#: ``amalib train --config <benchmark> ...`` (200 epochs).
GPU_SHORT_RUN = (
    "train.epochs=3",
    "train.max_steps_per_epoch=200",
    "loss.schedule.cc_start_epoch=1",
    "loss.schedule.cc_ramp_end_epoch=2",
    "loss.schedule.ma_start_epoch=2",
    "loss.schedule.sg_start_epoch=2",
    "eval.every=1",
    "train.checkpoint_every=1",
)

_OFFICIAL_WEIGHTS = (
    "https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/"
    "dino_vitbase16_pretrain_full_checkpoint.pth"
)


class ProfileUnavailableError(RuntimeError):
    """The selected profile cannot run here (files or GPU missing); the message says what to do."""


# ------------------------------------------------------------------------------------------------
# Working directory and environment


def find_project_root(start: str | Path | None = None) -> Path | None:
    """The amalib checkout that contains ``start`` (default: the working directory), or None.

    A folder counts when it holds ``pyproject.toml``, ``amalib/__init__.py`` and ``notebooks/`` —
    a git clone. A pip install (Colab) has no such folder.
    """
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (
            (folder / "pyproject.toml").is_file()
            and (folder / "amalib" / "__init__.py").is_file()
            and (folder / "notebooks").is_dir()
        ):
            return folder
    return None


def work_folder(start: str | Path | None = None) -> Path:
    """Where the notebooks keep ``data/`` and ``runs/``: the checkout's root, else a writable folder.

    In a checkout: its root (Jupyter starts a kernel in ``notebooks/``; the configs use paths
    relative to the root, ``data.root: data/mini``). Outside one (``pip install amalib[full]``,
    Colab): ``$AMALIB_HOME`` when set, else ``start`` (default: the working directory) when it is
    writable, else ``~/amalib``. Configs, the starting backbone and the ablation results are
    package data, so nothing else is needed.
    """
    here = Path(start if start is not None else Path.cwd()).resolve()
    root = find_project_root(here)
    if root is not None:
        return root
    if os.environ.get(HOME_VARIABLE):
        return Path(os.environ[HOME_VARIABLE]).expanduser().resolve()
    if os.access(here, os.W_OK):
        return here
    return Path.home() / "amalib"


def enter_project_root(start: str | Path | None = None) -> Path:
    """Make :func:`work_folder` the working directory (created if needed) and return it."""
    root = work_folder(start)
    root.mkdir(parents=True, exist_ok=True)
    os.chdir(root)
    return root


def setup_notebook(start: str | Path | None = None, *, dpi: int = 72) -> Path:
    """What the first cell of every notebook needs: project root, figure size, quiet imports.

    Calls :func:`enter_project_root`, sets matplotlib's figure resolution (small figures keep
    the committed notebooks small) and silences tqdm's "IProgress not found" warning, which
    appears where ipywidgets is missing (amalib shows no progress bars in the notebooks).

    Returns:
        The working directory.
    """
    import warnings

    import matplotlib.pyplot as plt

    warnings.filterwarnings("ignore", message="IProgress not found")
    plt.rcParams["figure.dpi"] = dpi
    return enter_project_root(start)


def print_relative(line: str) -> None:
    """Print a log line with this machine's paths shortened (for the engine's ``log=``).

    The installed package's folder becomes ``amalib`` and the working directory disappears, so
    the outputs committed with a notebook do not carry the paths of the machine that ran it.
    """
    import amalib

    package = str(Path(amalib.__file__).resolve().parent)
    cwd = str(Path.cwd().resolve())
    print(line.replace(package, "amalib").replace(cwd + os.sep, "").replace(cwd, "."))


def gpu_name() -> str | None:
    """Name of the first CUDA device, or None when there is no usable GPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0)


# ------------------------------------------------------------------------------------------------
# Profiles


@dataclass(frozen=True)
class Profile:
    """What a notebook runs on: a config, its overrides, a device and a run directory.

    Attributes:
        name: ``"cpu-mini"`` or ``"gpu-real"``.
        config_name: Shipped config (``"mini"``, ``"sketchy25"``, …).
        overrides: Dotted overrides applied to every config of the profile.
        short_run: Extra overrides of the short training run of notebooks 05/06.
        device: ``"cpu"`` or ``"cuda"``.
        description: One line for the notebook.
    """

    name: str
    config_name: str
    overrides: tuple[str, ...] = ()
    short_run: tuple[str, ...] = ()
    device: str = "cpu"
    description: str = ""

    def config(self, *overrides: str) -> dict:
        """The resolved config of the profile with further ``key=value`` overrides."""
        from amalib.config import load_config

        return load_config(self.config_name, [*self.overrides, *overrides])

    def short_run_config(self, *overrides: str) -> dict:
        """The config of the profile's short training run."""
        return self.config(*self.short_run, *overrides)

    @property
    def run_dir(self) -> Path:
        """``runs/tutorial/<profile>``: the notebooks' training run (relative to the root)."""
        return TUTORIAL_RUNS / self.name


def missing_gpu_profile_files(benchmark: str, data_root, weights) -> list[str]:
    """What the ``gpu-real`` profile needs and does not find, one readable line per item.

    Args:
        benchmark: ``sketchy21``, ``sketchy25``, ``tuberlin`` or ``quickdraw``.
        data_root: Folder holding the benchmark's folder (e.g. ``<root>/Sketchy/zeroshot1/...``).
        weights: The official DINO ViT-B/16 file (``dino_vitbase16_pretrain*.pth``).
    """
    from amalib.data.benchmarks import get_benchmark

    spec = get_benchmark(benchmark)
    missing = []
    if data_root is None or not Path(data_root).is_dir():
        missing.append(f"data root {data_root!s} (a folder holding {spec.image_root}/)")
    else:
        root = Path(data_root)
        for split, (list_file, class_file, _) in spec.splits().items():
            if not (root / list_file).is_file():
                missing.append(f"{split} list {root / list_file}")
            if not (root / class_file).is_file():
                missing.append(f"class map {root / class_file}")
        missing = list(dict.fromkeys(missing))
    if weights is None or not Path(weights).expanduser().is_file():
        missing.append(f"DINO weights {weights!s}")
    return missing


def select_profile(
    name: str = "cpu-mini",
    *,
    benchmark: str = "sketchy25",
    data_root: str | Path | None = None,
    weights: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> Profile:
    """The profile a notebook's ``PROFILE`` switch names; refuses loudly when it cannot run.

    ``cpu-mini`` needs nothing: the mini-benchmark is generated into ``data/mini`` and the small
    starting backbone ships with amalib. ``gpu-mini`` is the same on a CUDA GPU, with the full
    ``mini`` preset as its training run (what ``amalib demo`` trains). ``auto`` is ``gpu-mini``
    when a GPU is visible, else ``cpu-mini``. ``gpu-real`` needs a CUDA GPU, the benchmark's lists and
    images under ``data_root`` and the official DINO ViT-B/16 file; when one is missing this raises
    :class:`ProfileUnavailableError` listing every missing item and how to get it — it never falls
    back to the CPU profile or to random weights.

    Args:
        name: ``"auto"``, ``"cpu-mini"``, ``"gpu-mini"`` or ``"gpu-real"``.
        benchmark: Real benchmark of ``gpu-real`` (a shipped config of the same name).
        data_root: Data root of ``gpu-real``.
        weights: DINO checkpoint of ``gpu-real``.
        overrides: Extra ``key=value`` config overrides for every config of the profile (e.g.
            ``["model.pretrained=none"]`` to start from random weights on purpose).

    Raises:
        amalib.config.ConfigError: (a ``ValueError``) unknown profile or benchmark name,
            or an override that is not a valid ``key=value`` for the profile's config.
        ProfileUnavailableError: ``gpu-mini`` without a GPU; ``gpu-real`` without its GPU, data
            or weights.
    """
    from amalib.config import ConfigError

    if not isinstance(name, str) or name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; choose one of {PROFILES}")
    if isinstance(overrides, (str, bytes)):
        raise ConfigError(f"overrides must be a list of 'key.sub=value' strings, e.g. "
                          f"['train.epochs=3'], got the string {overrides!r}")
    profile = _select_profile(name, benchmark, data_root, weights, tuple(overrides))
    profile.short_run_config()  # a bad override is an error now, not in a later cell
    return profile


def _select_profile(name: str, benchmark: str, data_root, weights, overrides: tuple) -> Profile:
    from amalib.config import ConfigError

    if name == "auto":
        name = "gpu-mini" if gpu_name() is not None else "cpu-mini"
    if name == "gpu-mini":
        if gpu_name() is None:
            raise ProfileUnavailableError(
                "PROFILE = 'gpu-mini' needs a CUDA GPU and none is visible (Colab: Runtime > "
                "Change runtime type > GPU); PROFILE = 'auto' picks the CPU when there is none.")
        return Profile(
            name="gpu-mini",
            config_name="mini",
            overrides=tuple(overrides),
            short_run=(),
            device="cuda",
            description=f"the embedded mini-benchmark (generated into data/mini) on {gpu_name()}",
        )
    if name == "cpu-mini":
        return Profile(
            name="cpu-mini",
            config_name="mini",
            overrides=("data.num_workers=0", *overrides),
            short_run=CPU_SHORT_RUN,
            device="cpu",
            description="the embedded mini-benchmark (generated into data/mini) on the CPU",
        )
    from amalib.data.benchmarks import BENCHMARKS

    if str(benchmark).lower() not in BENCHMARKS or str(benchmark).lower() == "mini":
        raise ConfigError(f"unknown real benchmark {benchmark!r} for PROFILE = 'gpu-real'; choose "
                          f"one of {', '.join(sorted(set(BENCHMARKS) - {'mini'}))}")
    problems = [f"missing: {item}" for item in missing_gpu_profile_files(benchmark, data_root,
                                                                          weights)]
    if gpu_name() is None:
        problems.append("no CUDA GPU is visible (Colab: Runtime > Change runtime type > GPU)")
    if problems:
        raise ProfileUnavailableError(
            f"PROFILE = 'gpu-real' ({benchmark}) cannot run here:\n  - "
            + "\n  - ".join(problems)
            + "\nHow to get them:\n"
            f"  - data: download the benchmark with the release's zero-shot file lists, then "
            f"check it with `amalib prepare {benchmark} --root {data_root}` (it prints the "
            "expected layout; `--build-from` writes the lists from class folders);\n"
            f"  - weights: {_OFFICIAL_WEIGHTS}\n"
            "    (or dino_vitbase16_pretrain.pth from https://github.com/facebookresearch/dino);\n"
            "  - or set PROFILE = 'cpu-mini' to run the embedded benchmark on the CPU."
        )
    return Profile(
        name="gpu-real",
        config_name=benchmark,
        overrides=(f"data.root={data_root}", f"model.pretrained={weights}", *overrides),
        short_run=GPU_SHORT_RUN,
        device="cuda",
        description=f"{benchmark} with the official DINO ViT-B/16 weights on {gpu_name()}",
    )


# ------------------------------------------------------------------------------------------------
# Data, backbones and runs


def eval_sets(config: dict) -> dict:
    """The evaluation datasets of a config (generating the mini-benchmark when needed).

    Returns:
        :func:`amalib.data.datasets.build_eval_sets` of the config's benchmark:
        ``sketch_test``/``photo_test`` (labelled, unseen classes) with the test transform and
        ``sketch_train``/``photo_train`` (seen classes, training-list order) with the cluster
        transform.
    """
    from amalib.config import eval_transform_from_config
    from amalib.data.benchmarks import resolve_benchmark
    from amalib.data.datasets import build_eval_sets

    dcfg = config["data"]
    root = Path(dcfg["root"])
    if dcfg.get("generate"):
        from amalib.data.synthetic import ensure_mini_benchmark

        ensure_mini_benchmark(root, **dcfg["generate"])
    spec = resolve_benchmark(root, str(config["benchmark"]))
    return build_eval_sets(
        root, spec, eval_transform_from_config(config, "eval"),
        train_transform=eval_transform_from_config(config, "cluster"),
    )


def load_starting_backbone(config: dict, *, seed: int = 0, device: str = "cpu"):
    """The backbone AMA starts from: the DINO weights named by ``model.pretrained``.

    ``model.pretrained: none`` gives a randomly initialised ViT (seeded) — on purpose only.

    Returns:
        A timm ViT in eval mode on ``device`` mapping ``(B, 3, H, W)`` to ``(B, D)`` CLS
        features.
    """
    import torch

    from amalib.models import create_vit, load_dino_backbone
    from amalib.train.trainer import resolve_pretrained

    mcfg = config["model"]
    path = resolve_pretrained(mcfg.get("pretrained"))
    if path is None:
        torch.manual_seed(seed)
        backbone = create_vit(mcfg["arch"], patch_size=mcfg["patch_size"],
                              img_size=mcfg["img_size"], stem=mcfg["stem"])
    else:
        backbone = load_dino_backbone(path, arch=mcfg["arch"], patch_size=mcfg["patch_size"],
                                      stem=mcfg["stem"])
    return backbone.to(device).eval()


def find_trained_run(candidates: Sequence[str | Path]) -> Path | None:
    """The first ``checkpoint.pth`` found among run directories (or checkpoint files)."""
    for candidate in candidates:
        path = Path(candidate)
        checkpoint = path if path.suffix == ".pth" else path / "checkpoint.pth"
        if checkpoint.is_file():
            return checkpoint
    return None


def load_or_train(profile: Profile, *, candidates: Sequence[str | Path] | None = None,
                  log=print) -> tuple:
    """The teacher backbone of a trained run: found on disk when present, else trained now.

    Looks, in order, at the notebooks' run ``runs/tutorial/<profile>`` (used only if its saved
    config is the profile's short-run config, so a stale run is retrained) and at the candidates
    (default: the demo's ``runs/demo/train``; used when their benchmark is the profile's). When
    nothing fits, trains the profile's short run into ``runs/tutorial/<profile>`` — the same run
    notebook 05 trains, so notebook 06 shows the same numbers whichever ran first.

    Returns:
        ``(backbone, config, checkpoint_path)``: the teacher backbone in eval mode on
        ``profile.device``, the run's config and the checkpoint it came from.
    """
    from amalib.checkpoint_io import load_checkpoint
    from amalib.config import ConfigError
    from amalib.errors import CheckpointError
    from amalib.retrieval.evaluate import load_trained_backbone
    from amalib.train.trainer import Trainer

    if not isinstance(profile, Profile):
        raise ConfigError(f"load_or_train needs the Profile that select_profile(...) returns, got "
                          f"{profile!r}")
    if isinstance(candidates, (str, Path)):  # one run directory or checkpoint
        candidates = [candidates]
    wanted = profile.short_run_config()
    own = find_trained_run([profile.run_dir])
    if own is not None:
        try:
            state = load_checkpoint(own, expect="ama")
        except CheckpointError as err:
            raise CheckpointError(f"{err} (the notebooks' own run: delete {own.as_posix()} to "
                                  "train it again)") from None
        if state.get("config") == wanted and \
                int(state.get("epoch", -1)) == int(wanted["train"]["epochs"]):
            backbone, cfg = load_trained_backbone(own)
            log(f"loaded the notebooks' run {own.as_posix()} (after {state['epoch']} epochs)")
            return backbone.to(profile.device), cfg, own
        log(f"{own.as_posix()} holds another run; it will be replaced")
    if candidates is None:
        candidates = [Path("runs/demo/train")]
    found = find_trained_run(candidates)
    if found is not None:
        backbone, cfg = load_trained_backbone(found)
        if cfg.get("benchmark") == wanted.get("benchmark"):
            log(f"loaded {found.as_posix()}")
            return backbone.to(profile.device), cfg, found
    log(f"no trained run found: training the short {profile.name} run into "
        f"{profile.run_dir.as_posix()} ...")
    metrics = profile.run_dir / "metrics.jsonl"
    if metrics.exists():
        metrics.unlink()
    trainer = Trainer(wanted, profile.run_dir, device=profile.device, progress=False,
                      log=lambda _line: None)
    trainer.fit()
    checkpoint = profile.run_dir / "checkpoint.pth"
    backbone, cfg = load_trained_backbone(checkpoint)
    return backbone.to(profile.device), cfg, checkpoint


def train_steps(trainer, n_steps: int, epoch: int = 0) -> list[dict[str, float]]:
    """Run ``n_steps`` optimisation steps of a :class:`~amalib.train.Trainer` at ``epoch``.

    The notebook-sized counterpart of ``Trainer.fit``: same batches, same step (teacher and
    student forward, scheduled losses, optimiser step, EMA update), no evaluation, no checkpoint.
    Terms that need prototypes (CC, MA) need ``trainer.cluster(epoch)`` first.

    Returns:
        One dict of float losses (``total``, ``sd_sketch``, ``sd_photo``, …) per step.
    """
    trainer.student.train()
    history = []
    for step, batch in enumerate(trainer.batches(epoch)):  # public: the engine's own batches
        if step >= n_steps:
            break
        out, _ = trainer.train_step(batch, epoch, epoch * trainer.steps_per_epoch + step)
        history.append({k: float(v) for k, v in out.items()})
    return history


# ------------------------------------------------------------------------------------------------
# Diagnostics


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


# ------------------------------------------------------------------------------------------------
# Figures


def to_image(tensor, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)) -> np.ndarray:
    """Undo the ImageNet normalisation of a ``(3, H, W)`` tensor: ``(H, W, 3)`` floats in [0, 1]."""
    import torch

    t = torch.as_tensor(tensor).detach().float().cpu()
    t = t * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]
    return t.clamp(0, 1).permute(1, 2, 0).numpy()


def show_as_jpeg(fig, *, quality: int = 85, dpi: int | None = None) -> None:
    """Display a matplotlib figure as a JPEG in the notebook and close it.

    Grids of photos compress badly as PNG (a retrieval grid is over 1 MB); as JPEG they keep the
    committed notebooks small. Line plots stay PNG (matplotlib's inline default).
    """
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    buffer = io.BytesIO()
    fig.savefig(buffer, format="jpeg", dpi=dpi or fig.dpi, bbox_inches="tight",
                pil_kwargs={"quality": quality})
    plt.close(fig)
    display(Image(data=buffer.getvalue(), format="jpeg"))


def plot_multicrop(crops_by_domain: dict[str, Sequence]):
    """One row per domain: the original image, then every crop (globals first) at its size.

    Args:
        crops_by_domain: ``{"sketch": (pil_image, crops), "photo": (pil_image, crops)}`` with
            ``crops`` the list returned by :class:`amalib.data.MultiCropTransform`.
    """
    import matplotlib.pyplot as plt

    n_cols = 1 + max(len(c) for _, c in crops_by_domain.values())
    fig, axes = plt.subplots(len(crops_by_domain), n_cols, figsize=(1.5 * n_cols,
                             1.8 * len(crops_by_domain)), squeeze=False)
    for row, (domain, (image, crops)) in enumerate(crops_by_domain.items()):
        axes[row, 0].imshow(np.asarray(image))
        axes[row, 0].set_title(f"{domain}\n{image.size[0]} px", fontsize=8)
        for col, crop in enumerate(crops, start=1):
            axes[row, col].imshow(to_image(crop))
            kind = "global" if crop.shape[-1] == crops[0].shape[-1] else "local"
            axes[row, col].set_title(f"{kind} {crop.shape[-1]} px", fontsize=8)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
        for ax in axes[row, len(crops) + 1:]:
            ax.axis("off")
    fig.tight_layout()
    return fig


def plot_attention(images, maps, titles: Sequence[str] | None = None):
    """Images (top row) and the mean over heads of their CLS attention (bottom row, overlaid).

    All maps share one colour scale (from 0 to the largest weight), shown by a colour bar:
    the attention weights of the patches sum to at most 1 per head, so a uniform map over
    ``n`` patches sits at ``1/n`` everywhere.

    Args:
        images: ``(B, 3, H, W)`` normalised images.
        maps: ``(B, heads, H / p, W / p)`` from :func:`amalib.models.cls_attention_maps`.
        titles: One title per image.
    """
    import matplotlib.pyplot as plt
    import torch

    maps = torch.as_tensor(maps).float().mean(1, keepdim=True)
    size = images.shape[-2:]
    up = torch.nn.functional.interpolate(maps, size=size, mode="nearest")[:, 0].numpy()
    vmax = float(up.max())
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.8 * n + 1.2, 4.2), squeeze=False,
                             layout="constrained")
    shown = None
    for i in range(n):
        axes[0, i].imshow(to_image(images[i]))
        if titles is not None:
            axes[0, i].set_title(titles[i], fontsize=9)
        axes[1, i].imshow(to_image(images[i]))
        # A light low end (YlOrRd) keeps dark sketch strokes visible under weak attention.
        shown = axes[1, i].imshow(up[i], cmap="YlOrRd", alpha=0.6, vmin=0.0, vmax=vmax)
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[1, 0].set_ylabel("CLS attention", fontsize=9)
    # One colour bar for the whole figure, so that both rows keep the same column widths.
    bar = fig.colorbar(shown, ax=axes, shrink=0.8, pad=0.01)
    bar.set_label("attention weight\n(mean over heads)", fontsize=9)
    bar.ax.tick_params(labelsize=8)
    return fig


def plot_image_rows(rows: Sequence[Sequence[str | Path]], row_titles: Sequence[str],
                    title: str = ""):
    """A grid of image files, one titled row per entry of ``rows``."""
    import matplotlib.pyplot as plt
    from PIL import Image

    n_cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(1.2 * n_cols + 2.0, 1.3 * len(rows)),
                             squeeze=False)
    for r, (paths, name) in enumerate(zip(rows, row_titles)):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(paths):
                with Image.open(paths[c]) as im:
                    ax.imshow(np.asarray(im.convert("RGB")))
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(name, fontsize=9, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_distance_matrices(matrices: dict[str, object], *, title: str = "",
                           labels: dict[str, str] | None = None, group_size: int | None = None,
                           group_labels: Sequence[str] | None = None,
                           cmaps: dict[str, str] | None = None):
    """Draw ``(B, B)`` matrices side by side, each with its own colour scale and colour bar.

    Matrices of different quantities (a distance, a similarity, a difference) must not share a
    scale: each panel is scaled from its own minimum to its own maximum.

    Args:
        matrices: ``{panel title: (B, B) tensor or array}``.
        title: Figure title.
        labels: ``{panel title: colour-bar label}`` (default: the panel title).
        group_size: Draw a red line every ``group_size`` rows and columns (samples ordered by
            hidden class, ``group_size`` per class).
        group_labels: One name per group, put as the tick at the group's centre.
        cmaps: ``{panel title: matplotlib colormap}`` (default ``"viridis"``), e.g.
            ``"viridis_r"`` for a distance so that close pairs are bright, like similar ones.
    """
    import matplotlib.pyplot as plt

    arrays = {k: v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
              for k, v in matrices.items()}
    fig, axes = plt.subplots(1, len(arrays), figsize=(4.0 * len(arrays), 3.8), squeeze=False)
    for ax, (name, a) in zip(axes[0], arrays.items()):
        image = ax.imshow(a, vmin=float(a.min()), vmax=float(a.max()),
                          cmap=(cmaps or {}).get(name, "viridis"))
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("sample j")
        ax.set_ylabel("sample i")
        if group_size:
            for edge in range(group_size, len(a), group_size):
                ax.axhline(edge - 0.5, color="red", lw=1.2)
                ax.axvline(edge - 0.5, color="red", lw=1.2)
            if group_labels is not None:
                centres = [(g + 0.5) * group_size - 0.5 for g in range(len(group_labels))]
                ax.set_xticks(centres, group_labels, fontsize=7, rotation=30, ha="right")
                ax.set_yticks(centres, group_labels, fontsize=7)
                ax.set(xlabel="", ylabel="")
        bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        bar.set_label((labels or {}).get(name, name), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
