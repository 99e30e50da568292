"""The notebooks' working directory and environment: where ``data/`` and ``runs/`` live, what
the first cell sets up, how log lines and photo grids are shown, where amalib is installed from.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "HOME_VARIABLE",
    "INSTALL_SOURCE",
    "enter_project_root",
    "find_project_root",
    "print_relative",
    "setup_notebook",
    "show_as_jpeg",
    "work_folder",
]

#: Where ``pip install amalib[full]`` comes from in the notebooks' install cell (Colab). The one
#: place to change for a fork or a wheel: ``"amalib[full] @ https://…/amalib-0.1.0-py3-none-any.whl"``.
#: ``tests/test_notebooks_clean.py`` checks that every notebook's install cell uses this value.
INSTALL_SOURCE = "amalib[full] @ git+https://github.com/amalib/amalib"

#: Environment variable naming the writable folder for ``data/`` and ``runs/`` when the notebooks
#: run outside a checkout (a pip install, Colab); default: the working directory if writable,
#: else ``~/amalib``.
HOME_VARIABLE = "AMALIB_HOME"


def find_project_root(start: str | Path | None = None) -> Path | None:
    """The amalib checkout that contains ``start`` (default: the working directory), or None.

    A folder counts when it holds ``pyproject.toml``, ``amalib/__init__.py`` and ``notebooks/`` —
    a git clone. A pip install (Colab) has no such folder.
    """
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (
            (folder / "pyproject.toml").is_file()
            and (folder / "amalib" / "__init__.py").is_file()
            and (folder / "notebooks").is_dir()
        ):
            return folder
    return None


def work_folder(start: str | Path | None = None) -> Path:
    """Where the notebooks keep ``data/`` and ``runs/``: the checkout's root, else a writable folder.

    In a checkout: its root (Jupyter starts a kernel in ``notebooks/``; the configs use paths
    relative to the root, ``data.root: data/mini``). Outside one (``pip install amalib[full]``,
    Colab): ``$AMALIB_HOME`` when set, else ``start`` (default: the working directory) when it is
    writable, else ``~/amalib``. Configs, the starting backbone and the ablation results are
    package data, so nothing else is needed.
    """
    here = Path(start if start is not None else Path.cwd()).resolve()
    root = find_project_root(here)
    if root is not None:
        return root
    if os.environ.get(HOME_VARIABLE):
        return Path(os.environ[HOME_VARIABLE]).expanduser().resolve()
    if os.access(here, os.W_OK):
        return here
    return Path.home() / "amalib"


def enter_project_root(start: str | Path | None = None) -> Path:
    """Make :func:`work_folder` the working directory (created if needed) and return it."""
    root = work_folder(start)
    root.mkdir(parents=True, exist_ok=True)
    os.chdir(root)
    return root


def setup_notebook(start: str | Path | None = None, *, dpi: int = 72) -> Path:
    """What the first cell of every notebook needs: project root, figure size, quiet imports.

    Calls :func:`enter_project_root`, sets matplotlib's figure resolution (small figures keep
    the committed notebooks small) and silences tqdm's "IProgress not found" warning, which
    appears where ipywidgets is missing (amalib shows no progress bars in the notebooks).

    Returns:
        The working directory.
    """
    import warnings

    import matplotlib.pyplot as plt

    warnings.filterwarnings("ignore", message="IProgress not found")
    plt.rcParams["figure.dpi"] = dpi
    return enter_project_root(start)


def print_relative(line: str) -> None:
    """Print a log line with this machine's paths shortened (for the engine's ``log=``).

    The installed package's folder becomes ``amalib`` and the working directory disappears, so
    the outputs committed with a notebook do not carry the paths of the machine that ran it.
    """
    import amalib

    package = str(Path(amalib.__file__).resolve().parent)
    cwd = str(Path.cwd().resolve())
    print(line.replace(package, "amalib").replace(cwd + os.sep, "").replace(cwd, "."))


def show_as_jpeg(fig, *, quality: int = 85, dpi: int | None = None) -> None:
    """Display a matplotlib figure as a JPEG in the notebook and close it.

    Grids of photos compress badly as PNG (a retrieval grid is over 1 MB); as JPEG they keep the
    committed notebooks small. Line plots stay PNG (matplotlib's inline default).
    """
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    buffer = io.BytesIO()
    fig.savefig(buffer, format="jpeg", dpi=dpi or fig.dpi, bbox_inches="tight",
                pil_kwargs={"quality": quality})
    plt.close(fig)
    display(Image(data=buffer.getvalue(), format="jpeg"))
