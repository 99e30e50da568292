"""Smoke tests of the scripts in benchmarks/: nothing else imports them, so they rot silently.

An import that moves or an argument that is renamed in amalib breaks a benchmark script without
failing any other test. Every script must therefore answer ``--help`` (which runs its imports and
builds its parser), and the few that can do a real run in a second or two at tiny sizes do one
and print the figures they are meant to print. Each script runs in-process with
:func:`runpy.run_path`, as ``python benchmarks/<script>.py ...`` would run it. No script here
downloads anything or reads data/mini; the timings they print are not checked.
"""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
# Every script builds an argparse parser in main() (bench_losses in its ``__main__`` block), and
# none does work before parsing its arguments, so ``--help`` needs no data, model or GPU. Scripts
# with a required argument (export_shipped_model's run folder, metric_conventions'
# --checkpoint) still exit 0 on --help: argparse prints the help before checking them.
SCRIPTS = sorted(BENCHMARKS.glob("*.py"))


def run_script(path: Path, args: list[str], monkeypatch) -> None:
    """Run ``path`` as ``__main__`` with command-line ``args``, the way ``python path`` does."""
    monkeypatch.setattr(sys, "argv", [str(path), *args])
    # `python benchmarks/x.py` puts benchmarks/ first on sys.path (bench_augment imports
    # bench_backbone, bench_eval imports bench_metrics); run_path does not.
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    runpy.run_path(str(path), run_name="__main__")


def test_benchmark_scripts_are_found():
    assert len(SCRIPTS) >= 4, f"the benchmark scripts are not in {BENCHMARKS}"


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_help(path, monkeypatch, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_script(path, ["--help"], monkeypatch)
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert out.startswith(f"usage: {path.name}")


@pytest.fixture
def restore_threads():
    """bench_index sets torch's and faiss' thread counts; later tests keep the machine's."""
    try:
        import faiss
    except ImportError:  # an optional dependency (amalib[full]); its scripts are skipped
        faiss = None
    torch_threads = torch.get_num_threads()
    faiss_threads = faiss.omp_get_max_threads() if faiss else None
    yield
    torch.set_num_threads(torch_threads)
    if faiss:
        faiss.omp_set_num_threads(faiss_threads)


# (script, tiny command-line arguments, what the output must contain): well under a second each
# on one CPU thread. The other scripts need data/mini (bench_augment, bench_eval, the probes,
# bench_train_step, profile_demo; bench_generate writes a whole one), a trained run or checkpoint
# (export_shipped_model, metric_conventions), or have no size options and take many seconds at
# their fixed release-sized inputs (bench_losses).
REAL_RUNS = [
    (
        "bench_backbone.py",
        "--batch 2 --n-local 1 --global-size 16 --local-size 8 --out-dim 16 --steps 1 --warmup 0",
        [
            r"^vit_mini/8 \([\d.]+M backbone parameters\), batch 2, 2 x 16 px \+ 1 x 8 px crops",
            r"^  full DINO step \(student .*\): +[\d.]+ ms  \([\d.]+ crops/s\)$",
            r"^  student backbone fwd\+bwd, one call per crop: +[\d.]+ ms  \(grouped is",
        ],
    ),
    (
        "bench_stem.py",
        "--batch 2 --n-local 1 --global-size 16 --local-size 8 --out-dim 16 --runs 1",
        [
            r"^\[1: 2x2 max pooling without a gradient, the stem's first stage\]$",
            r"^  8 x 32 x 16 x 16: kernel +[\d.]+ ms, four quarters +[\d.]+ ms .*equal: True$",
            r"^  the whole forward of 8 global crops: .*features equal: True$",
            r"^  gradients computed and dropped .*weights equal after 2 steps: True$",
        ],
    ),
    (
        "bench_metrics.py",
        "--queries 20 --gallery 200 --repeats 1 --skip-quickdraw",
        [
            r"^\[1: metrics on the same 20 x 200 float32 score matrix\]$",
            r"^  amalib evaluate_scores \(all four\): +[\d.]+ ms/query$",
            r"^\[2: end to end from 768-d features, 20 x 200\]$",
            r"^  speed-up: [\d.]+x   mAP@all ref=[\d.]+ amalib=[\d.]+$",
        ],
    ),
    (
        "bench_clustering.py",
        "--n 400 --dim 8 --ks 4 8 --redo 1 --iters 2",
        [
            r"^faiss [\d.]+, \d+ OpenMP threads; features 400 x 8 float32; 2 iterations",
            r"^ +K +restarts +time +inertia +empty +peak RSS$",
            r"^ +4 +1 +[\d.]+s +[\d.]+ +\d+ +\d+MiB$",
            r"^ +8 +1 +[\d.]+s +[\d.]+ +\d+ +\d+MiB$",
        ],
    ),
    (
        "bench_index.py",
        "--n 500 --dim 16 --classes 3 --queries 32 --calls 2 --batch-calls 1 --repeats 1 --threads 1",
        [
            r"^gallery 500 x 16 \(3 classes\), \d+ queries, 1 thread\(s\)",
            r"^built flat .*RSS \+-?\d+ MB$",
            r"^built ivf +\{'nlist': \d+, 'nprobe': \d+\}",
            r"^\| index \(search parameters\) \| batch 1: .* \| recall@10 \| recall@100 \|$",
            r"^\| hnsw M=32, ef_search=64 \| .* \| [\d.]+ \| [\d.]+ \|$",
            r"^hnsw: file \d+ MB, save [\d.]+ s, load [\d.]+ s$",
        ],
    ),
]
NEEDS_FAISS = {"bench_clustering.py", "bench_index.py"}


@pytest.mark.parametrize(
    ("script", "args", "expected"), REAL_RUNS, ids=[name for name, _, _ in REAL_RUNS]
)
def test_tiny_run(script, args, expected, monkeypatch, capsys, restore_threads):
    if script in NEEDS_FAISS:
        pytest.importorskip("faiss")  # an optional dependency (amalib[full]), as in test_clustering
    run_script(BENCHMARKS / script, args.split(), monkeypatch)
    out = capsys.readouterr().out
    for pattern in expected:
        assert re.search(pattern, out, flags=re.MULTILINE), f"{pattern!r} not in:\n{out}"
