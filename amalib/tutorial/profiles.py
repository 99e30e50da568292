"""The notebooks' ``PROFILE`` switch: what a notebook runs on (``auto``, ``cpu-mini``,
``gpu-mini``, ``gpu-real``), with loud errors that name the missing files and how to get them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CPU_SHORT_RUN",
    "DEVICE_VARIABLE",
    "GPU_SHORT_RUN",
    "PROFILES",
    "PROFILE_VARIABLE",
    "TUTORIAL_RUNS",
    "Profile",
    "ProfileUnavailableError",
    "gpu_name",
    "missing_gpu_profile_files",
    "select_profile",
]

#: The profiles a notebook can select with its ``PROFILE`` switch. ``auto`` is the embedded
#: mini-benchmark on the GPU when one is present (``gpu-mini``), else on the CPU (``cpu-mini``).
PROFILES = ("auto", "cpu-mini", "gpu-mini", "gpu-real")

#: Environment variables that override the notebooks' ``PROFILE`` cell and the profile's device,
#: e.g. ``AMALIB_PROFILE=gpu-mini AMALIB_DEVICE=cpu`` runs the GPU profile's code path (its
#: full training run and its assertions) on a CPU. ``select_profile`` prints that it was forced.
PROFILE_VARIABLE = "AMALIB_PROFILE"
DEVICE_VARIABLE = "AMALIB_DEVICE"

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


def gpu_name() -> str | None:
    """Name of the first CUDA device, or None when there is no usable GPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0)


@dataclass(frozen=True)
class Profile:
    """What a notebook runs on: a config, its overrides, a device and a run directory.

    Attributes:
        name: ``"cpu-mini"``, ``"gpu-mini"`` or ``"gpu-real"``.
        config_name: Shipped config (``"mini"``, ``"sketchy25"``, …).
        overrides: Dotted overrides applied to every config of the profile.
        short_run: Extra overrides of the short training run of notebook 05.
        full_run: Extra overrides of the full run (``TRAIN = True``; :meth:`full_run_config`).
        device: ``"cpu"`` or ``"cuda"`` (``AMALIB_DEVICE`` can force either).
        description: One line for the notebook.
    """

    name: str
    config_name: str
    overrides: tuple[str, ...] = ()
    short_run: tuple[str, ...] = ()
    device: str = "cpu"
    description: str = ""
    full_run: tuple[str, ...] = ()

    def config(self, *overrides: str) -> dict:
        """The resolved config of the profile with further ``key=value`` overrides."""
        from amalib.config import load_config

        return load_config(self.config_name, [*self.overrides, *overrides])

    def short_run_config(self, *overrides: str) -> dict:
        """The config of the profile's short training run."""
        return self.config(*self.short_run, *overrides)

    def full_run_config(self, *overrides: str) -> dict:
        """The config of the profile's full run, the one ``load_or_train(..., train=True)``
        trains: on the mini-benchmark the ``mini`` preset as ``amalib demo`` trains it (6
        epochs); on ``gpu-real`` the release's recipe compressed into 3 epochs."""
        return self.config(*self.full_run, *overrides)

    @property
    def run_dir(self) -> Path:
        """``runs/tutorial/<profile>``: notebook 05's short run (relative to the root)."""
        return TUTORIAL_RUNS / self.name

    @property
    def full_run_dir(self) -> Path:
        """``runs/tutorial/<profile>-full``: the notebooks' own full run (``TRAIN = True``)."""
        return TUTORIAL_RUNS / f"{self.name}-full"


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
    log=print,
) -> Profile:
    """The profile a notebook's ``PROFILE`` switch names; refuses loudly when it cannot run.

    The environment overrides the cell: ``AMALIB_PROFILE`` replaces ``name`` and
    ``AMALIB_DEVICE`` (``cpu``, ``cuda`` or ``cuda:N``) the profile's device, so that
    ``AMALIB_PROFILE=gpu-mini AMALIB_DEVICE=cpu jupyter nbconvert --execute ...`` runs the GPU
    profile's code path on a CPU. A forced value is printed (``log``).

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
        log: Where the line saying that the environment forced the profile goes.

    Raises:
        amalib.config.ConfigError: (a ``ValueError``) unknown profile or benchmark name,
            or an override that is not a valid ``key=value`` for the profile's config.
        ProfileUnavailableError: ``gpu-mini`` without a GPU; ``gpu-real`` without its GPU, data
            or weights.
    """
    import os

    from amalib.config import ConfigError

    forced = os.environ.get(PROFILE_VARIABLE, "").strip()
    if forced:
        if forced not in PROFILES:
            raise ConfigError(f"{PROFILE_VARIABLE}={forced!r} is not a profile; choose one of "
                              f"{PROFILES} or unset it")
        log(f"profile forced to {forced!r} by {PROFILE_VARIABLE} (the cell says {name!r})")
        name = forced
    if not isinstance(name, str) or name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; choose one of {PROFILES}")
    if isinstance(overrides, (str, bytes)):
        raise ConfigError(f"overrides must be a list of 'key.sub=value' strings, e.g. "
                          f"['train.epochs=3'], got the string {overrides!r}")
    device = os.environ.get(DEVICE_VARIABLE, "").strip() or None
    if device is not None:
        import re

        if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
            raise ConfigError(f"{DEVICE_VARIABLE}={device!r}: expected cpu, cuda or cuda:N")
        if device.startswith("cuda") and gpu_name() is None:
            raise ProfileUnavailableError(f"{DEVICE_VARIABLE}={device} but no CUDA GPU is "
                                          f"visible; unset it or set {DEVICE_VARIABLE}=cpu")
    profile = _select_profile(name, benchmark, data_root, weights, tuple(overrides),
                              device)
    if device is not None:
        log(f"device forced to {device!r} by {DEVICE_VARIABLE} (profile {profile.name})")
    profile.short_run_config()  # a bad override is an error now, not in a later cell
    profile.full_run_config()
    return profile


def _select_profile(name: str, benchmark: str, data_root, weights, overrides: tuple,
                    device: str | None = None) -> Profile:
    """The profile; ``device`` (``AMALIB_DEVICE``) replaces its device and lifts the GPU check."""
    from amalib.config import ConfigError

    on = "the CPU (forced)" if device == "cpu" else (gpu_name() or "the CPU")
    if name == "auto":
        name = "gpu-mini" if gpu_name() is not None else "cpu-mini"
    if name == "gpu-mini":
        if gpu_name() is None and device is None:
            raise ProfileUnavailableError(
                "PROFILE = 'gpu-mini' needs a CUDA GPU and none is visible (Colab: Runtime > "
                "Change runtime type > GPU); PROFILE = 'auto' picks the CPU when there is none.")
        return Profile(
            name="gpu-mini",
            config_name="mini",
            overrides=tuple(overrides),
            short_run=(),
            device=device or "cuda",
            description=f"the embedded mini-benchmark (generated into data/mini) on {on}",
        )
    if name == "cpu-mini":
        # In-process data loading for the notebooks' few-step runs (no worker start-up), but the
        # full run (TRAIN = True) loads data as `amalib demo` does: the worker count decides the
        # augmentation's random streams, so with it the full run is the demo's run, number for
        # number on the same machine. A user's own data.num_workers override wins in both.
        workers_set = any(o.split("=", 1)[0].strip() == "data.num_workers" for o in overrides)
        from amalib.config import load_config

        full_run = () if workers_set else (
            f"data.num_workers={load_config('mini')['data']['num_workers']}",)
        return Profile(
            name="cpu-mini",
            config_name="mini",
            overrides=("data.num_workers=0", *overrides),
            short_run=CPU_SHORT_RUN,
            full_run=full_run,
            device=device or "cpu",
            description="the embedded mini-benchmark (generated into data/mini) on "
                        + ("the CPU" if (device or "cpu") == "cpu" else str(gpu_name())),
        )
    from amalib.data.benchmarks import BENCHMARKS

    if str(benchmark).lower() not in BENCHMARKS or str(benchmark).lower() == "mini":
        raise ConfigError(f"unknown real benchmark {benchmark!r} for PROFILE = 'gpu-real'; choose "
                          f"one of {', '.join(sorted(set(BENCHMARKS) - {'mini'}))}")
    problems = [f"missing: {item}" for item in missing_gpu_profile_files(benchmark, data_root,
                                                                          weights)]
    if gpu_name() is None and device != "cpu":
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
        full_run=GPU_SHORT_RUN,  # the release's 200 epochs are not a notebook's run
        device=device or "cuda",
        description=f"{benchmark} with the official DINO ViT-B/16 weights on {on}",
    )
