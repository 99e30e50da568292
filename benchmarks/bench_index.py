"""Gallery-index benchmark at QuickDraw size: build time, query latency, memory, recall.

A gallery of 54,151 L2-normalised 768-d features (QuickDraw-Extended's test photos) with the
structure of a retrieval embedding — 30 classes, each a mixture of sub-modes, with noise mostly
in a low-rank subspace — and sketch-like queries (the same classes, shifted by a common domain
offset). For each :class:`amalib.retrieval.index.GalleryIndex` kind it prints:

* build time, wall clock and CPU (one build; IVF includes its k-means training), index bytes
  (``faiss.serialize_index``; for the exact kind, which searches its features, their bytes) and
  the resident-memory increase of the process over the build;
* query latency at batch 1 and batch 256: p50 and p99 over the timed calls of one repetition,
  median over ``--repeats`` repetitions, in wall-clock time and (p50) in CPU time of the process:
  on a shared machine the wall-clock figures include waiting for a core, the CPU times do not;
* recall@10 and recall@100 of the approximate kinds against the exact (flat) lists, for several
  ``ef_search`` (HNSW) and ``nprobe`` (IVF) values; the search-time parameters change without a
  rebuild;
* the file size and the save and load times of the flat and HNSW index files.

    nice -n 10 env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_index.py
    python benchmarks/bench_index.py --n 5000 --repeats 1   # a quick look
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def rss_mb() -> float:
    """Resident memory of this process (Linux ``/proc/self/status``), in MB, after handing
    freed heap back to the system (so that memory freed by one build is not reused unseen by
    the next)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def structured_features(rng, n: int, dim: int, n_classes: int, *, modes: int = 20,
                        rank: int = 64, offset=None):
    """Class-clustered unit vectors: class centre + sub-mode + low-rank noise + a little
    isotropic noise (+ ``offset``, a domain shift shared by all rows)."""
    centres = rng.standard_normal((n_classes, dim), dtype=np.float32)
    sub = 0.6 * rng.standard_normal((n_classes, modes, dim), dtype=np.float32)
    basis = rng.standard_normal((rank, dim), dtype=np.float32) / np.sqrt(rank)
    return centres, sub, basis


def sample(rng, n, centres, sub, basis, *, offset=None):
    n_classes, modes, dim = sub.shape
    labels = rng.integers(0, n_classes, n)
    mode = rng.integers(0, modes, n)
    x = centres[labels] + sub[labels, mode]
    x += 1.2 * rng.standard_normal((n, len(basis)), dtype=np.float32) @ basis
    x += 0.15 * rng.standard_normal((n, dim), dtype=np.float32)
    if offset is not None:
        x += offset
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), labels


def latencies(search, queries: np.ndarray, batch: int, n_calls: int, repeats: int):
    """Median over repetitions of the p50 and p99 wall-clock latency (ms) of ``n_calls``
    searches, and of the p50 CPU time of this process per call (ms): with one thread, CPU time
    is what the call costs, whatever else the machine runs."""
    p50, p99, cpu50 = [], [], []
    for r in range(repeats):
        times, cpu = [], []
        for c in range(n_calls):
            start = ((r * n_calls + c) * batch) % (len(queries) - batch + 1)
            q = queries[start:start + batch]
            t0, c0 = time.perf_counter(), time.process_time()
            search(q)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        p50.append(np.percentile(times, 50) * 1e3)
        p99.append(np.percentile(times, 99) * 1e3)
        cpu50.append(np.percentile(cpu, 50) * 1e3)
    return statistics.median(p50), statistics.median(p99), statistics.median(cpu50)


def recall(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean over queries of |approximate top-k ∩ exact top-k| / k."""
    k = exact.shape[1]
    return float(np.mean([len(np.intersect1d(a[a >= 0], e)) / k for a, e in zip(approx, exact)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=54151, help="gallery size (QuickDraw: 54,151)")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--classes", type=int, default=30)
    parser.add_argument("--queries", type=int, default=1024, help="queries for recall")
    parser.add_argument("--calls", type=int, default=200, help="timed batch-1 calls per repeat")
    parser.add_argument("--batch-calls", type=int, default=10,
                        help="timed batch-256 calls per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import faiss
    import torch

    from amalib.retrieval.index import GalleryIndex

    faiss.omp_set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    model = structured_features(rng, args.n, args.dim, args.classes)
    gallery, _ = sample(rng, args.n, *model)
    shift = 0.5 * rng.standard_normal(args.dim, dtype=np.float32)
    queries, _ = sample(rng, max(args.queries, 256 * args.batch_calls), *model, offset=shift)
    paths = [f"photo/{i}.jpg" for i in range(args.n)]
    print(f"gallery {args.n} x {args.dim} ({args.classes} classes), {len(queries)} queries, "
          f"{args.threads} thread(s), faiss {faiss.__version__}, torch {torch.__version__}")

    indexes, rows = {}, []
    for kind in ("flat", "hnsw", "ivf"):
        before = rss_mb()
        t0, c0 = time.perf_counter(), time.process_time()
        ix = GalleryIndex.build(gallery, paths, kind=kind)
        build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0
        if kind == "flat":  # the exact kind searches its normalised features: no faiss index
            rss = rss_mb() - before
            size = ix.features.nbytes / 1e6
        else:
            kept, ix._features = ix._features, None  # count the index's memory, not the
            rss = rss_mb() - before  # normalised copy it keeps (and rescores candidates with)
            size = len(faiss.serialize_index(ix.index)) / 1e6
            ix._features = kept
        indexes[kind] = ix
        rows.append((kind, ix.params, build_s, build_cpu, size, rss))
        print(f"built {kind:<4} {ix.params}: {build_s:.1f} s ({build_cpu:.1f} s CPU), "
              f"index {size:.0f} MB, RSS +{rss:.0f} MB", flush=True)

    eval_q = queries[: args.queries]
    exact = {k: indexes["flat"].search(eval_q, k)[0] for k in (10, 100)}

    def report(name, search):
        b1 = latencies(lambda q: search(q, 10), queries, 1, args.calls, args.repeats)
        b256 = latencies(lambda q: search(q, 10), queries, 256, args.batch_calls, args.repeats)
        r10 = recall(search(eval_q, 10)[0], exact[10])
        r100 = recall(search(eval_q, 100)[0], exact[100])
        print(f"| {name} | {b1[0]:.2f} / {b1[1]:.2f} ({b1[2]:.2f}) | "
              f"{b256[0]:.0f} / {b256[1]:.0f} ({b256[2]:.0f}) | {r10:.3f} | {r100:.3f} |",
              flush=True)

    print("\n| index (search parameters) | batch 1: p50 / p99 ms (p50 CPU) | "
          "batch 256: p50 / p99 ms (p50 CPU) | recall@10 | recall@100 |")
    print("|---|---|---|---|---|")
    report("flat (exact: amalib's top_k scores)", indexes["flat"].search)
    hnsw = indexes["hnsw"]
    for ef in (64, 128, 256):
        hnsw.index.hnsw.efSearch = ef
        report(f"hnsw M=32, ef_search={ef}", hnsw.search)
    ivf = indexes["ivf"]
    for nprobe in (8, 32, 128):
        ivf.index.nprobe = nprobe
        report(f"ivf nlist={ivf.params['nlist']}, nprobe={nprobe}", ivf.search)

    print("\n| index | build: wall s (CPU s) | index bytes (MB) | RSS increase (MB) |")
    print("|---|---|---|---|")
    for kind, params, build_s, build_cpu, size, rss in rows:
        print(f"| {kind} {params or ''} | {build_s:.1f} ({build_cpu:.1f}) | {size:.0f} | "
              f"{rss:.0f} |")

    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("flat", "hnsw"):
            ix = indexes[kind]
            ix._features = gallery
            path = Path(tmp) / f"g_{kind}.amaidx"
            t0 = time.perf_counter()
            ix.save(path)
            save_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            GalleryIndex.load(path)
            load_s = time.perf_counter() - t0
            print(f"{kind}: file {path.stat().st_size / 1e6:.0f} MB, save {save_s:.2f} s, "
                  f"load {load_s:.2f} s")


if __name__ == "__main__":
    main()
