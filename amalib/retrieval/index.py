"""The photo gallery amalib searches: features, paths, labels (and a faiss index) in one file.

:class:`GalleryIndex` is amalib's one gallery type: the sketch pad
(:mod:`amalib.retrieval.sketch_query`, :func:`amalib.apps.sketch_pad`) searches one built in
memory from ``(features, paths, labels)``, ``amalib retrieve`` one extracted from a checkpoint or
read from an ``.amaidx`` file. It holds the gallery's L2-normalised features, the image paths
(relative to a recorded root), the labels and class names when the gallery has them
(:meth:`GalleryIndex.class_name`, :meth:`GalleryIndex.label_of`: the one lookup between class ids
and names), and answers cosine searches in one of two ways:

* ``kind="flat"`` (default): exact — every query is scored against every photo with
  :func:`amalib.metrics.top_k`'s scores (no faiss needed; faiss' ``IndexFlatIP`` is made only
  when :attr:`GalleryIndex.index` is asked for).
* ``kind="hnsw"``: ``IndexHNSWFlat`` (Malkov & Yashunin, TPAMI 2018), a graph searched greedily;
  parameters ``M`` (links per node), ``ef_construction`` (build effort) and ``ef_search``
  (search effort: recall against latency).
* ``kind="ivf"``: ``IndexIVFFlat``, a k-means coarse quantiser with ``nlist`` lists of which
  ``nprobe`` are scanned per query (default ``nlist``: about ``4·√N``, at most ``N / 39`` so that
  each centroid has the 39 training points faiss asks for).

The approximate kinds pay a build cost and lose some recall for a shorter query time; figures at
QuickDraw size are in ``docs/performance.md`` (``benchmarks/bench_index.py``).

**File format** (``.amaidx``): an uncompressed ``.npz`` archive read with
``numpy.load(allow_pickle=False)``, so loading a file runs no code: ``meta`` (UTF-8 JSON as bytes:
format version, kind and parameters, dimension, paths, root, class names, provenance — the
checkpoint, its weights' fingerprint, the model and the image transform),
``features`` (``(N, D)`` float32), ``labels`` (``(N,)`` int64, when labelled) and, for the
approximate kinds, ``faiss`` (``faiss.serialize_index`` bytes: an HNSW graph or trained IVF
lists take time to rebuild). The exact index is rebuilt from ``features`` on loading, which is a
copy, so the file does not hold the features twice. faiss is imported on first use (an exact
gallery never needs it).

Building a gallery from a checkpoint and a folder or benchmark split:
:mod:`amalib.retrieval.gallery`; the command line: ``amalib index build`` and ``amalib retrieve
--index``.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from amalib.errors import AmalibError

__all__ = ["GalleryIndex", "GalleryIndexError", "INDEX_KINDS", "FORMAT", "FORMAT_VERSION",
           "class_name", "resolve_params"]

FORMAT = "amalib-gallery-index"
FORMAT_VERSION = 1
#: Kinds and their parameters with defaults (``None``: chosen from the gallery size).
INDEX_KINDS: dict[str, dict[str, int | None]] = {
    "flat": {},
    "hnsw": {"M": 32, "ef_construction": 100, "ef_search": 128},
    "ivf": {"nlist": None, "nprobe": 32},
}
_BUILD_FIX = "amalib index build --checkpoint <run>/checkpoint.pth --gallery <split or folder> " \
             "--out {path}"


class GalleryIndexError(AmalibError, ValueError):
    """A gallery index file that cannot be used: not an index, damaged, or built for other
    features. The message names the file and the fix."""


def _faiss():
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - faiss is in the locked environment
        raise ImportError("the gallery index needs faiss: pip install faiss-cpu "
                          "(or amalib[full])") from err
    return faiss


def class_name(class_names, label) -> str | None:
    """Name of class ``label``: its name when ``class_names`` has one, else its id as text;
    None for None. The one id-to-name lookup of amalib's galleries
    (:meth:`GalleryIndex.class_name`, :class:`~amalib.retrieval.sketch_query.SketchQueryResult`).
    """
    if label is None:
        return None
    if class_names and 0 <= int(label) < len(class_names):
        return str(class_names[int(label)])
    return str(int(label))


def _numpy(x) -> np.ndarray:
    """A numpy array of ``x`` (a torch tensor on any device, bfloat16 as float32: exact)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":  # numpy has no bfloat16
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


def _checked(x, name: str, dim: int | None = None) -> np.ndarray:
    """``x`` as an ``(n, dim)`` array of finite floating-point values (float32 unless it is a
    floating-point array already)."""
    x = _numpy(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    if x.ndim != 2:
        raise ValueError(f"{name} must be (n, dim), got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise GalleryIndexError(f"{name} are {x.shape[1]}-d but the index holds {dim}-d features")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} have non-finite values (NaN or inf)")
    return x


def _normalised(x, name: str) -> np.ndarray:
    """``x`` as C-contiguous float32 rows of unit norm (what faiss' inner product needs)."""
    from amalib.metrics import unit_features

    x = _checked(x, name).astype(np.float32, copy=False)
    # The same rows on every machine: an index built on two CPUs holds the same bits.
    return np.ascontiguousarray(unit_features(x).numpy())


def resolve_params(kind: str, params: dict | None, n: int) -> dict[str, int]:
    """The parameters of ``kind`` for ``n`` items: defaults, then ``params``, checked."""
    if kind not in INDEX_KINDS:
        raise GalleryIndexError(f"unknown index kind {kind!r}; choose from "
                                f"{', '.join(INDEX_KINDS)}")
    defaults = INDEX_KINDS[kind]
    params = dict(params or {})
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        valid = ", ".join(defaults) or "none"
        raise GalleryIndexError(f"unknown parameter(s) {', '.join(unknown)} for a {kind!r} "
                                f"index; valid: {valid}")
    out = {**defaults, **params}
    if kind == "ivf" and out["nlist"] is None:
        out["nlist"] = max(1, min(round(4 * math.sqrt(n)), n // 39))
    for key, value in out.items():
        if int(value) != value or int(value) < 1:
            raise GalleryIndexError(f"index parameter {key} must be a positive integer, "
                                    f"got {value!r}")
        out[key] = int(value)
    if kind == "ivf" and out["nlist"] > n:
        raise GalleryIndexError(f"nlist={out['nlist']} is more lists than the {n} gallery items")
    return out


def _apply_search_params(index, kind: str, params: dict) -> None:
    """Search-time settings are not all kept by faiss' serialisation: set them on every load."""
    if kind == "hnsw":
        index.hnsw.efSearch = params["ef_search"]
    elif kind == "ivf":
        index.nprobe = min(params["nprobe"], params["nlist"])


def _build_faiss(features: np.ndarray, kind: str, params: dict):
    faiss = _faiss()
    dim = features.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, params["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params["ef_construction"]
    else:
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, params["nlist"], faiss.METRIC_INNER_PRODUCT)
        index.cp.spherical = True  # unit-norm centroids, for an inner-product gallery
        index.train(features)
    index.add(features)
    _apply_search_params(index, kind, params)
    return index


class GalleryIndex:
    """Features, paths, labels (and, for the approximate kinds, a faiss inner-product index) of
    one photo gallery.

    Build with :meth:`build`, write with :meth:`save`, read with :meth:`load`, query with
    :meth:`search`; class ids and names: :meth:`class_name`, :meth:`label_of`.

    Attributes:
        paths: Image paths, relative to ``root`` when it is set.
        root: Directory the paths are relative to (``None``: paths as given).
        labels: ``(N,)`` int64 class ids, or ``None`` for an unlabelled gallery.
        class_names: Names by id, or ``None``.
        kind: ``"flat"``, ``"hnsw"`` or ``"ivf"``.
        params: The kind's parameters, defaults filled in.
        provenance: JSON-ready description of where the features come from (checkpoint,
            weights fingerprint, model, transform, gallery source); free-form for callers.
        source: The file it was loaded from (``None`` when built in memory).
    """

    def __init__(self, index, paths, *, root=None, labels=None, class_names=None,
                 kind: str = "flat", params: dict | None = None, provenance: dict | None = None,
                 features: np.ndarray | None = None, source: Path | None = None):
        self._index = index
        self.paths = list(paths)
        self.root = None if root is None else str(root)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.class_names = None if class_names is None else list(class_names)
        self.kind = kind
        self.params = dict(params or {})
        self.provenance = dict(provenance or {})
        self.source = source
        self._features = features
        self._grid = None

    # ------------------------------------------------------------------ building and searching

    @classmethod
    def build(cls, features, paths, *, labels=None, class_names=None, root=None,
              kind: str = "flat", params: dict | None = None,
              provenance: dict | None = None) -> GalleryIndex:
        """Index ``features`` (``(N, D)``; L2-normalised here) of the images at ``paths``.

        Args:
            features: ``(N, D)`` numpy array or tensor.
            paths: ``N`` image paths (relative to ``root`` when given).
            labels: ``(N,)`` class ids, or ``None``.
            class_names: Names by id, or ``None``.
            root: Directory the paths are relative to.
            kind: ``"flat"`` (exact), ``"hnsw"`` or ``"ivf"`` (approximate).
            params: Parameters of ``kind`` (see :data:`INDEX_KINDS`); the rest take defaults.
            provenance: JSON-ready description recorded in the file.

        Raises:
            GalleryIndexError: an unknown kind or parameter.
            ValueError: features that are not ``(N, D)`` and finite, or lengths that disagree.
        """
        x = _normalised(features, "features")
        if len(x) == 0:
            raise ValueError("the gallery is empty: features has no rows")
        if labels is not None:
            labels = _numpy(labels).astype(np.int64).reshape(-1)
        if len(paths) != len(x) or (labels is not None and len(labels) != len(x)):
            raise ValueError(f"{len(x)} feature rows but {len(paths)} paths"
                             + ("" if labels is None else f" and {len(labels)} labels"))
        params = resolve_params(kind, params, len(x))
        # The exact kind searches the features themselves: its faiss index is made only if asked.
        index = None if kind == "flat" else _build_faiss(x, kind, params)
        return cls(index, paths, root=root, labels=labels, class_names=class_names, kind=kind,
                   params=params, provenance=provenance, features=x)

    @property
    def index(self):
        """The faiss index (the approximate kinds' candidates); for the exact kind an
        ``IndexFlatIP`` of the features, made on first use (its searches do not use it)."""
        if self._index is None:
            self._index = _build_faiss(self.features, self.kind, self.params)
        return self._index

    def __len__(self) -> int:
        return len(self.features) if self._index is None else int(self._index.ntotal)

    @property
    def dim(self) -> int:
        """Feature dimension."""
        return self.features.shape[1] if self._index is None else int(self._index.d)

    @property
    def features(self) -> np.ndarray:
        """``(N, D)`` float32 unit-norm features (read from :attr:`source` on first use)."""
        if self._features is None:
            with np.load(self.source, allow_pickle=False) as archive:
                self._features = archive["features"]
        return self._features

    @property
    def grid(self):
        """The features on amalib's scoring grid (:func:`amalib.metrics.grid_features`), made
        on the first exact search and kept: a float64 tensor, twice the features' memory."""
        if self._grid is None:
            import torch

            from amalib.metrics import grid_features

            self._grid = grid_features(torch.from_numpy(self.features))
        return self._grid

    def search(self, queries, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best gallery items of each query by cosine similarity.

        The exact kind ranks with :func:`amalib.metrics.top_k` against the stored rows (the
        same lists and scores on every machine, ties by gallery order; the stored rows are the
        gallery features normalised and rounded to float32, so scores can differ from
        ``top_k`` on the raw features by that rounding); the approximate kinds take faiss'
        candidates and score and order them the same way
        (:func:`amalib.metrics.rescore_candidates`).

        Args:
            queries: ``(Q, D)`` query features (L2-normalised here), or one query ``(D,)``.
            k: List length (at most the gallery size).

        Returns:
            ``(indices, scores)``: ``(Q, k)`` int64 and float32, best first. An approximate index
            may find fewer than ``k`` items (an IVF search whose ``nprobe`` lists hold fewer);
            missing places have index ``-1`` and score ``-inf``.

        Raises:
            GalleryIndexError: queries of another dimension than the index's.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        where = f" ({self.source})" if self.source else ""
        queries = _numpy(queries)
        if queries.ndim == 1:  # one query
            queries = queries[None]
        try:
            raw = _checked(queries, "queries", self.dim)
        except GalleryIndexError as err:
            raise GalleryIndexError(f"{err}{where}: embed the queries with the model the index "
                                    "was built with, or rebuild it") from None
        import torch

        from amalib.metrics import rescore_candidates, top_k_of_grid

        # Scored from the queries as given, as top_k would score them; faiss (approximate
        # kinds only) proposes candidates from their unit rows.
        if self.kind == "flat":  # exact: amalib's scores and tie order, not faiss' float32 ones
            return top_k_of_grid(torch.as_tensor(raw), self.grid, min(k, len(self)))
        _, candidates = self.index.search(_normalised(raw, "queries"), min(k, len(self)))
        return rescore_candidates(raw, self.features, candidates)

    @property
    def n_classes(self) -> int:
        """How many classes: the class names', else the largest label + 1 (0: unlabelled)."""
        if self.class_names:
            return len(self.class_names)
        return 0 if self.labels is None or not len(self.labels) else int(self.labels.max()) + 1

    def class_name(self, label: int | None) -> str | None:
        """Name of class ``label`` (its id as text when the gallery has no names; None for
        None): :func:`class_name` with this gallery's names."""
        return class_name(self.class_names, label)

    def label_of(self, query: int | str | None) -> int | None:
        """A class id from an id (an ``int``, returned as it is) or a class name; None stays None.

        Raises:
            amalib.errors.InputError: a name that is not one of the gallery's classes (the
                message lists them).
        """
        if query is None:
            return None
        if isinstance(query, (int, np.integer)) and not isinstance(query, bool):
            return int(query)
        names = self.class_names
        if names and query in names:
            return names.index(query)
        from amalib.errors import InputError

        n = self.n_classes
        raise InputError(f"unknown class {query!r}"
                         + (f"; the gallery's classes: {', '.join(names)}" if names else
                            f" (the gallery has no class names; ids 0-{n - 1})" if n else
                            " (the gallery has no class names)"))

    def label_name(self, i: int) -> str | None:
        """Class name (or id) of gallery item ``i``; ``None`` when unlabelled."""
        if self.labels is None or self.labels[i] < 0:
            return None
        return self.class_name(self.labels[i])

    def image_path(self, i: int) -> Path:
        """The file of gallery item ``i`` (``root / paths[i]``)."""
        return Path(self.root) / self.paths[i] if self.root else Path(self.paths[i])

    # ------------------------------------------------------------------ file format

    def meta(self) -> dict:
        """The JSON metadata written to the file."""
        import amalib

        try:
            import faiss
        except ImportError:  # an exact gallery is saved without faiss
            faiss = None
        return {"format": FORMAT, "version": FORMAT_VERSION, "kind": self.kind,
                "params": self.params, "metric": "inner product of L2-normalised features",
                "n": len(self), "dim": self.dim, "root": self.root, "paths": self.paths,
                "labelled": self.labels is not None, "class_names": self.class_names,
                "provenance": self.provenance, "amalib": amalib.__version__,
                "faiss": None if faiss is None else faiss.__version__}

    def save(self, path) -> Path:
        """Write the index to ``path`` (atomically: a temporary file renamed over it)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"meta": np.frombuffer(json.dumps(self.meta()).encode("utf-8"), np.uint8),
                  "features": self.features}
        if self.labels is not None:
            arrays["labels"] = self.labels
        if self.kind != "flat":
            arrays["faiss"] = _faiss().serialize_index(self.index)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with tmp.open("wb") as fh:
                np.savez(fh, **arrays)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    @classmethod
    def load(cls, path) -> GalleryIndex:
        """Read an index written by :meth:`save`.

        Raises:
            FileNotFoundError: no file at ``path`` (the message says how to build one).
            GalleryIndexError: the file is not an amalib gallery index, comes from a newer
                format version, or its parts disagree (a damaged file).
        """
        path = Path(path)
        fix = _BUILD_FIX.format(path=path)
        if not path.is_file():
            raise FileNotFoundError(f"gallery index not found: {path}; build one with `{fix}`")
        not_index = f"{path} is not an amalib gallery index"
        if not zipfile.is_zipfile(path):  # an .npz archive is a zip; numpy's own message is
            # about unpickling, which amalib never does
            with path.open("rb") as fh:
                truncated = fh.read(2) == b"PK"
            raise GalleryIndexError(
                f"{path} is truncated or damaged (an incomplete archive); rebuild it with `{fix}`"
                if truncated else f"{not_index} (not an .npz archive); build one with `{fix}`")
        with zipfile.ZipFile(path) as archive:
            stored = archive.namelist()
        if any(name.endswith("data.pkl") for name in stored):
            raise GalleryIndexError(
                f"{not_index}: it is a PyTorch checkpoint; pass it as --checkpoint, or build an "
                f"index from it with `amalib index build --checkpoint {path} --gallery <split or "
                "folder> --out gallery.amaidx`")
        try:
            with np.load(path, allow_pickle=False) as archive:
                names = set(archive.files)
                if "meta" not in names:
                    raise GalleryIndexError(f"{not_index} (an .npz archive without amalib's "
                                            f"'meta' entry); build one with `{fix}`")
                meta = json.loads(archive["meta"].tobytes().decode("utf-8"))
                parts = {name: archive[name] for name in ("features", "labels", "faiss")
                         if name in names}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            if isinstance(err, GalleryIndexError):
                raise
            detail = "an entry holds Python objects" if "pickle" in str(err) else \
                f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
            raise GalleryIndexError(f"{path} is damaged ({detail}); rebuild it with "
                                    f"`{fix}`") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise GalleryIndexError(f"{path} is not an amalib gallery index (format "
                                    f"{meta.get('format') if isinstance(meta, dict) else None!r}); "
                                    f"rebuild it with `{fix}`")
        if meta.get("version", 0) > FORMAT_VERSION:
            raise GalleryIndexError(f"{path} has format version {meta['version']}, newer than "
                                    f"this amalib reads ({FORMAT_VERSION}): upgrade amalib")
        missing = [key for key in ("n", "dim", "kind", "params", "paths", "root", "labelled",
                                   "class_names", "provenance") if key not in meta]
        if missing:
            raise GalleryIndexError(f"{path} is damaged (its metadata lacks "
                                    f"{', '.join(missing)}); rebuild it with `{fix}`")
        features = parts.get("features")
        n, dim, kind = meta["n"], meta["dim"], meta["kind"]
        problems = []
        if features is None or features.shape != (n, dim) or features.dtype != np.float32:
            problems.append(f"features {None if features is None else features.shape}, "
                            f"expected ({n}, {dim}) float32")
        if len(meta["paths"]) != n:
            problems.append(f"{len(meta['paths'])} paths for {n} items")
        if meta["labelled"] != ("labels" in parts) or (
                "labels" in parts and parts["labels"].shape != (n,)):
            problems.append("labels do not match the items")
        if kind != "flat" and "faiss" not in parts:
            problems.append(f"no faiss index stored for kind {kind!r}")
        if problems:
            raise GalleryIndexError(f"{path} is damaged: {'; '.join(problems)}; rebuild it with "
                                    f"`{fix}`")
        if kind == "flat":
            index = None  # searched by its features, kept: no faiss copy of them
        else:
            index = _faiss().deserialize_index(parts["faiss"])
            if index.ntotal != n or index.d != dim:
                raise GalleryIndexError(f"{path} is damaged: its faiss index holds "
                                        f"{index.ntotal} × {index.d}, expected {n} × {dim}; "
                                        f"rebuild it with `{fix}`")
            _apply_search_params(index, kind, meta["params"])
        # An approximate kind's faiss index holds its own copy of the features; they are read
        # again from the file if asked.
        return cls(index, meta["paths"], root=meta["root"], labels=parts.get("labels"),
                   class_names=meta["class_names"], kind=kind, params=meta["params"],
                   provenance=meta["provenance"], source=path,
                   features=features if kind == "flat" else None)
