"""A tiny generated benchmark and a toy config so the whole pipeline runs in seconds."""

from __future__ import annotations

import pytest
from tiny_benchmark import TINY_DATA, tiny_overrides

from amalib.config import load_config
from amalib.tutorial import DEVICE_VARIABLE, MODEL_VARIABLE, PROFILE_VARIABLE

#: What a shell (or `make test`, for the notebooks it executes) may set to steer the tutorial
#: helpers: the tests choose profile, device and model themselves.
TUTORIAL_VARIABLES = (PROFILE_VARIABLE, DEVICE_VARIABLE, MODEL_VARIABLE)


@pytest.fixture(autouse=True)
def no_forced_tutorial_environment(monkeypatch):
    for name in TUTORIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    from amalib.data.synthetic import ensure_mini_benchmark

    root = tmp_path_factory.mktemp("tiny") / "mini"
    ensure_mini_benchmark(root, **TINY_DATA)
    return root


@pytest.fixture
def tiny_config(tiny_root):
    def make(**extra):
        return load_config("mini", tiny_overrides(tiny_root, **extra))

    return make
