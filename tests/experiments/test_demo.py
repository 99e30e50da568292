"""The main job's code path on the tiny benchmark: summary, table and figures."""

from __future__ import annotations

import json

import pytest
from tiny_benchmark import tiny_overrides

from amalib.experiments.demo import format_comparison, run_demo
from amalib.metrics import METRIC_KEYS

pytestmark = pytest.mark.slow


def test_demo_writes_summary_and_figures(tiny_root, tmp_path):
    import torch

    lines = []
    # One thread, which is not this machine's default: the UMAP figure used to reset torch's
    # (OpenMP's) thread count to the number of cores, under the run's feet.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = run_demo(tmp_path / "demo", overrides=tiny_overrides(tiny_root),
                           progress=False, log=lines.append)
        threads_after = torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)
    written = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert written["before"] == summary["before"] and written["after"] == summary["after"]
    assert set(written["chance"]) == set(METRIC_KEYS) and written["chance"]["P@100"] > 0
    for part in ("before", "after"):
        assert set(METRIC_KEYS) <= set(written[part])
        assert all(0 <= written[part][k] <= 1 for k in METRIC_KEYS)
    for name in ("retrieval_grid.png", "umap.png", "train/curves.png"):
        assert (tmp_path / "demo" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert "mAP@all" in "\n".join(lines)
    # What the run cost: the process's peak memory (a training run needs well over 100 MB),
    # the largest worker's (the tiny benchmark loads in the main process: none), wall time.
    assert 0.1 < written["peak_rss_gb"] < 8 and 0 <= written["peak_rss_worker_gb"] < 8
    assert written["wall_time_s"] > 0
    assert written["torch_threads"] == threads_after == 1
    # The starting backbone's report reuses the "before" evaluation's features.
    start = written["starting_backbone"]
    assert start["report"]["sketch->photo"] == pytest.approx(written["before"]["mAP@all"])
    assert set(start["random_init"]) == set(start["report"])


def test_comparison_table_ratio():
    before = dict.fromkeys(METRIC_KEYS, 0.2)
    after = dict.fromkeys(METRIC_KEYS, 0.3)
    table = format_comparison(before, after)
    assert "1.50x" in table and table.count("\n") == len(METRIC_KEYS) + 1
    with_chance = format_comparison(before, after, dict.fromkeys(METRIC_KEYS, 0.05))
    assert with_chance.splitlines()[0].endswith("chance") and "0.0500" in with_chance


def test_term_health_flags_degenerate_self_distillation_and_an_empty_filter():
    import math

    from amalib.experiments.demo import term_health

    ln_k = math.log(4096)
    history = [
        {"epoch": 0, "loss": {"sd_sketch": 6.0, "sd_photo": ln_k * 0.97}},
        {"epoch": 1, "loss": {"sd_sketch": 5.5, "sd_photo": ln_k * 1.02}, "cc_kept_sketch": 0.0,
         "cc_kept_photo": 0.05},
        {"epoch": 2, "loss": {"sd_sketch": 5.0, "sd_photo": ln_k}, "cc_kept_sketch": 0.1,
         "cc_kept_photo": 0.07},
    ]
    health = term_health(history, 4096)
    assert health["sd_photo"]["at_degenerate"] and not health["sd_sketch"]["at_degenerate"]
    assert health["cc_kept_sketch"]["zero_in_epochs"] == [1]
    assert health["cc_kept_photo"]["zero_in_epochs"] == []
    assert len(health["warnings"]) == 2
    assert "sd_photo" in health["warnings"][0] and "sketch images in epochs [1]" in \
        health["warnings"][1]
    # 6 % away from ln K in one epoch is not "stuck".
    history[0]["loss"]["sd_photo"] = ln_k * 0.94
    assert not term_health(history, 4096)["sd_photo"]["at_degenerate"]


def test_sigterm_stops_the_demo_with_143_and_no_summary_then_it_resumes(tiny_root, tmp_path):
    """Issue 18.3: an interrupted demo used to evaluate, write summary.json and exit 0."""
    import os
    import shlex
    import signal
    import subprocess
    import sys
    import time

    from amalib.cli import main

    out = tmp_path / "demo"
    out.mkdir()
    (out / "summary.json").write_text("{}")  # a previous run's: must not survive
    sets = [a for o in tiny_overrides(tiny_root, **{"train.epochs": 4}) for a in ("--set", o)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "amalib", "demo", "--out", str(out), "--no-progress", *sets],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 120
        for line in proc.stdout:  # inside the training loop, after epoch 0's checkpoint
            if line.startswith("epoch   0 |") or time.monotonic() > deadline:
                break
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr
    assert not (out / "summary.json").exists()
    assert (out / "train" / "checkpoint.pth").is_file()
    assert "SIGTERM received" in stdout + stderr
    hint = stderr.strip().splitlines()[-1]
    assert "Resume with: amalib demo" in hint and "--resume" in hint
    # The printed command finishes the run and only then writes the summary.
    assert main(shlex.split(hint.split("Resume with: ", 1)[1])[1:] + ["--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(METRIC_KEYS) <= set(summary["after"])
    assert len(summary["term_health"]["sd_sketch"]["epoch_means"]) == 4
