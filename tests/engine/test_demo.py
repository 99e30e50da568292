"""The main job's code path on the tiny benchmark: summary, table and figures."""

from __future__ import annotations

import json

import pytest
from tiny_benchmark import tiny_overrides

from amalib.engine.demo import format_comparison, run_demo
from amalib.metrics import METRIC_KEYS

pytestmark = pytest.mark.slow


def test_demo_writes_summary_and_figures(tiny_root, tmp_path):
    lines = []
    summary = run_demo(tmp_path / "demo", overrides=tiny_overrides(tiny_root),
                       progress=False, log=lines.append)
    written = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert written["before"] == summary["before"] and written["after"] == summary["after"]
    for part in ("before", "after"):
        assert set(METRIC_KEYS) <= set(written[part])
        assert all(0 <= written[part][k] <= 1 for k in METRIC_KEYS)
    for name in ("retrieval_grid.png", "umap.png", "train/curves.png"):
        assert (tmp_path / "demo" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert "mAP@all" in "\n".join(lines)


def test_comparison_table_ratio():
    before = dict.fromkeys(METRIC_KEYS, 0.2)
    after = dict.fromkeys(METRIC_KEYS, 0.3)
    table = format_comparison(before, after)
    assert "1.50x" in table and table.count("\n") == len(METRIC_KEYS) + 1
