"""Helpers of the notebook series ``notebooks/01_data.ipynb`` … ``06_retrieval_evaluation.ipynb``.

The notebooks show and explain; what they compute lives here or elsewhere in amalib and is
unit-tested (``tests/test_tutorial.py``). This package gathers the pieces that only a tutorial
needs, one module per job:

* :mod:`~amalib.tutorial.notebook`: the working directory (``work_folder``, ``setup_notebook``),
  how log lines and photo grids are shown, where the install cell installs from;
* :mod:`~amalib.tutorial.profiles`: the **profile switch** (``cpu-mini``: the embedded
  mini-benchmark on the CPU, what CI executes; ``gpu-real``: a real benchmark with the official
  DINO ViT-B/16 weights on a GPU), with loud errors that name the missing files and how to get
  them; ``AMALIB_PROFILE``/``AMALIB_DEVICE`` force a profile and device from the environment;
* :mod:`~amalib.tutorial.runs`: "load a trained model — the notebooks' own full run, the
  demo's, or the one that ships with amalib (``ama_mini``) — or train one" (notebooks 05 and
  06; ``AMALIB_MODEL`` names the model from the environment), the evaluation data and
  starting backbone of a config (the Trainer's own, :mod:`amalib.train.build`), a few engine
  steps;
* :mod:`~amalib.tutorial.analysis`: small diagnostics of AMA's pieces (cluster purity, prototype
  neighbours, the teacher's confidence in its own cluster, a toy DINO collapse experiment).

The figures that draw them are :mod:`amalib.viz.images` and :mod:`amalib.viz.matrices`.
Everything is re-exported here: the notebooks call ``tutorial.<name>``.

Reference: Yin et al., "Asymmetric Mutual Alignment for Unsupervised Zero-Shot Sketch-Based Image
Retrieval", AAAI 2024; DINO: Caron et al., ICCV 2021.

Importing this package is cheap: torch, matplotlib and the engine are imported inside functions.
"""

from __future__ import annotations

from amalib.tutorial.analysis import (
    cluster_purity,
    dino_collapse_experiment,
    format_masks,
    nearest_to_prototypes,
    own_cluster_confidence,
    sketch_neighbour_shares,
)
from amalib.tutorial.notebook import (
    HOME_VARIABLE,
    INSTALL_SOURCE,
    enter_project_root,
    find_project_root,
    print_relative,
    setup_notebook,
    show_as_jpeg,
    work_folder,
)
from amalib.tutorial.profiles import (
    CPU_SHORT_RUN,
    DEVICE_VARIABLE,
    GPU_SHORT_RUN,
    PROFILE_VARIABLE,
    PROFILES,
    TUTORIAL_RUNS,
    Profile,
    ProfileUnavailableError,
    gpu_name,
    missing_gpu_profile_files,
    select_profile,
)
from amalib.tutorial.runs import (
    MODEL_VARIABLE,
    SHIPPED_MODEL,
    eval_sets,
    find_trained_run,
    load_or_train,
    load_starting_backbone,
    shipped_model_info,
    train_steps,
)

# The figures are amalib.viz's; the notebooks call them as tutorial.plot_... too.
from amalib.viz.images import plot_attention, plot_image_rows, plot_multicrop, to_image
from amalib.viz.matrices import plot_distance_matrices

__all__ = [
    "CPU_SHORT_RUN",
    "DEVICE_VARIABLE",
    "GPU_SHORT_RUN",
    "HOME_VARIABLE",
    "MODEL_VARIABLE",
    "PROFILES",
    "PROFILE_VARIABLE",
    "Profile",
    "SHIPPED_MODEL",
    "ProfileUnavailableError",
    "cluster_purity",
    "dino_collapse_experiment",
    "enter_project_root",
    "eval_sets",
    "INSTALL_SOURCE",
    "find_project_root",
    "find_trained_run",
    "format_masks",
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
    "shipped_model_info",
    "sketch_neighbour_shares",
    "show_as_jpeg",
    "to_image",
    "train_steps",
    "TUTORIAL_RUNS",
    "work_folder",
]
