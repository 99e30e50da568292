"""The committed notebooks are clean: executed in order, with outputs, figures, no machine paths.

Plain JSON checks, fast. nbval (the README's test command) re-executes the notebooks and compares
their outputs; this file checks what nbval cannot see: that the committed outputs come from one
clean top-to-bottom run and carry nothing of the machine that produced them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from amalib.tutorial import INSTALL_SOURCE

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SERIES = (
    "01_data",
    "02_dino_backbone",
    "03_self_distillation",
    "04_mutual_alignment",
    "05_training",
    "06_retrieval_evaluation",
)
IGNORE_TAG = "nbval-ignore-output"

# Absolute paths of a POSIX or Windows machine, and this checkout's own location.
ABSOLUTE_PATH = re.compile(
    r"(?<![\w.:/])(/(work|tmp|root|home|Users|private|var/folders|opt/conda|usr/local)/"
    r"|\b[A-Za-z]:\\[\w ]|site-packages)"
)
MEMORY_ADDRESS = re.compile(r"\bat 0x[0-9a-fA-F]{6,}|<[^<>\n]* object at 0x[0-9a-fA-F]+>")
# A code cell that prints or draws must have committed outputs.
PRODUCES_OUTPUT = re.compile(r"\bprint\(|show_as_jpeg\(|^fig\s*=|\bfig\s*=\s*plot_", re.M)


def load(name: str) -> dict:
    return json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def text_of(output: dict) -> str:
    """Every textual part of an output (stream text, text/* data, error traceback)."""
    parts = []
    if "text" in output:
        parts.append("".join(output["text"]))
    for mime, value in output.get("data", {}).items():
        if mime.startswith("text/") or mime == "application/json":
            parts.append(value if isinstance(value, str) else "".join(value))
    parts += output.get("traceback", [])
    return "\n".join(parts)


def test_the_series_is_complete():
    found = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    assert found == sorted(SERIES), f"notebooks/ holds {found}"


@pytest.mark.parametrize("name", SERIES)
def test_executed_in_order_from_a_fresh_kernel(name):
    counts = [c["execution_count"] for c in code_cells(load(name))]
    assert counts == list(range(1, len(counts) + 1)), (
        f"{name}: execution counts {counts}; re-execute the notebook top to bottom "
        "(jupyter nbconvert --to notebook --execute --inplace)"
    )
    for cell in code_cells(load(name)):
        for output in cell["outputs"]:
            if output["output_type"] == "execute_result":
                assert output["execution_count"] == cell["execution_count"]


@pytest.mark.parametrize("name", SERIES)
def test_no_errors_and_outputs_where_expected(name):
    for i, cell in enumerate(code_cells(load(name)), start=1):
        source = "".join(cell["source"])
        kinds = [o["output_type"] for o in cell["outputs"]]
        assert "error" not in kinds, f"{name}, code cell {i} failed"
        if PRODUCES_OUTPUT.search(source):
            assert cell["outputs"], f"{name}, code cell {i} prints or draws but has no output"
        for output in cell["outputs"]:
            if output.get("name") == "stderr" and IGNORE_TAG not in cell["metadata"].get("tags", []):
                pytest.fail(f"{name}, code cell {i} writes to stderr (a warning?):\n"
                            + "".join(output["text"])[:500])


@pytest.mark.parametrize("name", SERIES)
def test_no_machine_paths_or_memory_addresses_in_outputs(name):
    here = str(ROOT)
    for i, cell in enumerate(code_cells(load(name)), start=1):
        for output in cell["outputs"]:
            text = text_of(output)
            assert here not in text, f"{name}, code cell {i}: output shows {here}"
            match = ABSOLUTE_PATH.search(text)
            assert match is None, f"{name}, code cell {i}: absolute path in output: " \
                f"...{text[max(0, match.start() - 60):match.end() + 60]}..."
            match = MEMORY_ADDRESS.search(text)
            assert match is None, f"{name}, code cell {i}: memory address {match.group(0)}"


@pytest.mark.parametrize("name", SERIES)
def test_figures_are_in_the_outputs(name):
    images = [mime for cell in code_cells(load(name)) for output in cell["outputs"]
              for mime in output.get("data", {}) if mime.startswith("image/")]
    assert images, f"{name} has no figure in its committed outputs"


@pytest.mark.parametrize("name", SERIES)
def test_badge_install_cell_and_profile_switch(name):
    nb = load(name)
    first = "".join(nb["cells"][0]["source"])
    assert nb["cells"][0]["cell_type"] == "markdown" and first.startswith("# ")
    assert (f"https://colab.research.google.com/github/amalib/amalib/blob/main/notebooks/"
            f"{name}.ipynb") in first, f"{name}: Colab badge missing or pointing elsewhere"
    assert "What you will learn" in first
    cells = code_cells(nb)
    install = "".join(cells[0]["source"])
    assert "import amalib" in install and "except ImportError" in install
    # The install source is one variable, the same in every notebook as in amalib.tutorial.
    source = re.search(r'^AMALIB_SOURCE = "([^"]+)"', install, re.M)
    assert source and source.group(1) == INSTALL_SOURCE, f"{name}: AMALIB_SOURCE"
    pip_line = next(line for line in install.splitlines()
                    if "pip" in line and "install" in line and not line.lstrip().startswith("#"))
    assert "AMALIB_SOURCE" in pip_line and "torch" not in pip_line, \
        f"{name}: the install cell installs AMALIB_SOURCE, never torch"
    assert not cells[0]["outputs"], f"{name}: the install cell ran pip when the notebook was saved"
    switch = "".join(cells[1]["source"])
    assert re.search(r'^PROFILE = "auto"', switch, re.M), f"{name}: PROFILE must default to auto"
    assert "tutorial.select_profile(PROFILE" in switch
    assert 'overrides=["model.pretrained=none"]' not in switch, f"{name}: development override left"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    last = "".join(nb["cells"][-1]["source"])
    assert nb["cells"][-1]["cell_type"] == "markdown" and "## Summary" in last


@pytest.mark.parametrize("name", SERIES)
def test_one_install_cell_that_says_what_to_do_when_it_fails(name):
    install = "".join(code_cells(load(name))[0]["source"])
    assert install == "".join(code_cells(load(SERIES[0]))[0]["source"]), \
        f"{name}: the install cell differs from {SERIES[0]}'s"
    pip_line = next(line for line in install.splitlines() if '"pip", "install"' in line)
    assert pip_line.rstrip().endswith("AMALIB_SOURCE]).returncode:"), pip_line  # checked
    failure = install.split("raise RuntimeError(", 1)[1]
    for what in ("AMALIB_SOURCE", "repository", "make wheel", "Upload", "file:///content/",
                 "run this cell again"):
        assert what in failure, f"{name}: the install failure message does not mention {what!r}"


@pytest.mark.parametrize("name", SERIES)
def test_colab_gpu_runtime_and_cpu_time(name):
    nb = load(name)
    assert nb["metadata"]["accelerator"] == "GPU"  # Colab opens a GPU runtime
    assert nb["metadata"]["colab"]["gpuType"] and "provenance" in nb["metadata"]["colab"]
    first = "".join(nb["cells"][0]["source"])
    assert re.search(r"\*\*Time:\*\* (about \d+ min|under a minute) on a 2-core CPU \(`cpu-mini`\)",
                     first), \
        f"{name}: the first cell must say how long the notebook takes on a CPU"


def test_the_readme_installs_from_the_same_source():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f'pip install "{INSTALL_SOURCE}"' in readme


@pytest.mark.parametrize("name", SERIES)
def test_only_known_tags(name):
    for cell in load(name)["cells"]:
        assert set(cell["metadata"].get("tags", [])) <= {IGNORE_TAG, "nbval-skip"}


@pytest.mark.parametrize("name", ["05_training", "06_retrieval_evaluation"])
def test_the_train_switch_is_off_when_committed(name):
    """TRAIN = True trains the full run (minutes to hours): committed notebooks read the shipped
    model and its records instead."""
    sources = ["".join(c["source"]) for c in code_cells(load(name))]
    switches = [s for s in sources if re.search(r"^TRAIN = ", s, re.M)]
    assert len(switches) == 1 and re.search(r"^TRAIN = False\b", switches[0], re.M)
    assert "load_or_train(profile, train=TRAIN)" in switches[0] or "if TRAIN:" in switches[0]
