"""The embedded mini-benchmark: a procedural sketch/photo zero-shot SBIR benchmark.

amalib generates it deterministically from a seed and writes it to disk in the same layout and
list-file format as the real benchmarks (``relative/path label`` lines, ``cname_cid.txt`` /
``cname_cid_zero.txt`` class maps), so every later stage — training, clustering, evaluation —
runs the same code path on it as on Sketchy, TU-Berlin or QuickDraw.

Classes are defined by **shape** through a small compositional grammar: a *body* primitive
(circle, ellipse, square, bar, triangle, star, hexagon, cross, crescent, heart, diamond, arrow,
house, trapezoid, dome) combined with a *part rule* (plain, legs, spikes, hole, handle, wheels,
ears, antenna, stacked, twin). Class ``k`` is the pair ``(BODIES[k % 15],
PARTS[(k % 15 + k // 15) % 10])``; this diagonal order enumerates all 150 pairs once, and any
prefix of it mixes bodies and parts, so the unseen classes are *new combinations* of bodies and
parts that the seen classes show in other combinations (compositional zero-shot). Every instance
re-samples the class's free parameters: proportions, part counts within the class's range, part
sizes, rotation, mirror, scale and position.

The two domains draw the same geometry independently (there is no pairing):

* **photos** — filled objects with random colours (independent of the class), two-tone parts,
  directional and rim shading, stripes / spots / noise textures, over gradient, smooth-noise,
  patchy or striped backgrounds with clutter and, sometimes, an occluder in front; JPEG.
  ``photo_style="calm"`` tones the backgrounds down, draws less clutter and fewer occluders and
  makes the objects larger (see :func:`render_photo`);
* **sketches** — black strokes on white paper: outlines only (hidden lines removed), wobbly
  strokes with over- and under-shooting ends, a slightly distorted hand, varying stroke width,
  stick-like parts drawn as single lines, occasionally a missing part or a retraced stroke; PNG.

Layout under ``root`` (paths in list files are relative to ``root``)::

    manifest.json                       parameters, generator version, every file's size
    zeroshot/cname_cid.txt              seen classes:   "name id"
    zeroshot/cname_cid_zero.txt         unseen classes: "name id"
    zeroshot/sketch_filelist_train.txt  seen sketches   "sketch/<class>/<class>_0000.png id"
    zeroshot/photo_filelist_train.txt   seen photos     "photo/<class>/<class>_0000.jpg id"
    zeroshot/sketch_filelist_zero.txt   unseen sketches (test queries)
    zeroshot/photo_filelist_zero.txt    unseen photos   (test gallery)
    pretrain/cname_cid.txt              extra photo classes, disjoint from both
    pretrain/photo_filelist.txt         "pretrain/photo/<class>/<class>_0000.jpg id"

The pretraining pool is the embedded counterpart of ImageNet: photos only, of classes that are
neither seen nor unseen, for pretraining the starting backbone (amalib pretrain).

Modules, by job: :mod:`~amalib.data.synthetic.grammar` (the classes and splits),
:mod:`~amalib.data.synthetic.geometry` (one instance's polygons),
:mod:`~amalib.data.synthetic.photo` and :mod:`~amalib.data.synthetic.sketch` (the two renderers),
:mod:`~amalib.data.synthetic.writer` (the tree on disk: parameters, manifest, locks, rendering
workers), :mod:`~amalib.data.synthetic.probe` (background kinds of a tree's photos) and
:mod:`~amalib.data.synthetic.examples` (a few images per class, for
:func:`amalib.viz.benchmark.plot_mini_benchmark`). Their public names are re-exported here.
"""

from __future__ import annotations

from amalib.data.synthetic.examples import ClassExamples, mini_benchmark_examples
from amalib.data.synthetic.grammar import (
    BODIES,
    MAX_CLASSES,
    PARTS,
    class_name,
    mini_benchmark_classes,
)
from amalib.data.synthetic.photo import BACKGROUND_KINDS, PHOTO_STYLES, render_photo
from amalib.data.synthetic.probe import photo_background_kinds
from amalib.data.synthetic.sketch import render_sketch
from amalib.data.synthetic.writer import (
    _DOMAIN_CODE,  # noqa: F401  (the per-image seeds; tests rebuild them)
    GENERATOR_VERSION,
    _render_chunk,  # noqa: F401  (what amalib.data._render_worker runs)
    check_mini_benchmark_params,
    check_mini_benchmark_tree,
    ensure_mini_benchmark,
    generate_mini_benchmark,
)

__all__ = [
    "BODIES",
    "PARTS",
    "MAX_CLASSES",
    "GENERATOR_VERSION",
    "class_name",
    "mini_benchmark_classes",
    "BACKGROUND_KINDS",
    "PHOTO_STYLES",
    "photo_background_kinds",
    "render_photo",
    "render_sketch",
    "generate_mini_benchmark",
    "ensure_mini_benchmark",
    "check_mini_benchmark_params",
    "check_mini_benchmark_tree",
    "ClassExamples",
    "mini_benchmark_examples",
]
