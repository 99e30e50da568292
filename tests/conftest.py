"""A tiny generated benchmark and a toy config so the whole pipeline runs in seconds."""

from __future__ import annotations

import pytest
from tiny_benchmark import TINY_DATA, tiny_overrides

from amalib.config import load_config


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
