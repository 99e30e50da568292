"""environment.yml follows today's conventions for CUDA conda environments and matches
pyproject.toml (amalib issue 16): conda-forge only (the ``pytorch`` channel no longer publishes
new builds), conda-forge's CUDA build of PyTorch with the CUDA runtime pinned by
``cuda-version``, and every dependency pyproject declares."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# pyproject's pip names -> conda-forge names where they differ.
CONDA_NAMES = {"torch": "pytorch-gpu"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def _environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def test_conda_forge_only_with_its_cuda_build_of_pytorch():
    env = _environment()
    assert env["name"] == "amalib"
    assert env["channels"] == ["conda-forge", "nodefaults"]
    packages = {_name(d): d for d in env["dependencies"] if isinstance(d, str)}
    # The retired pytorch-channel way of asking for CUDA must not come back.
    assert not {"pytorch-cuda", "cudatoolkit", "pytorch"} & set(packages)
    assert "pytorch-gpu" in packages
    assert re.fullmatch(r"cuda-version[=<>]+1[2-9](\.\d+)?", packages["cuda-version"].replace(" ", ""))
    assert packages["python"].startswith("python=3.1")


def test_every_pyproject_dependency_is_in_the_environment():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = [*project["dependencies"], *extras["full"],
              *(d for d in extras["notebooks"] + extras["dev"] if not d.startswith("amalib"))]
    env = _environment()
    packages = {_name(d) for d in env["dependencies"] if isinstance(d, str)}
    missing = sorted({CONDA_NAMES.get(_name(d), _name(d)) for d in wanted} - packages)
    assert not missing, f"environment.yml lacks {missing}"
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip[-1] == "-e ."  # amalib itself, from the checkout
