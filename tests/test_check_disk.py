"""The Makefile's disk check: a new ``.venv`` that will not fit fails before pip starts, with a
message that names the directory, the free space and the fix (``requirements/check_disk.py``)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "requirements" / "check_disk.py"


def _module():
    spec = importlib.util.spec_from_file_location("check_disk", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_existing_parent_walks_up_to_a_directory_that_exists(tmp_path):
    check_disk = _module()
    assert check_disk.existing_parent(tmp_path / "a" / "b" / ".venv") == tmp_path.resolve()
    assert check_disk.existing_parent(tmp_path) == tmp_path.resolve()


def test_check_compares_the_free_space_of_the_venvs_filesystem(tmp_path, monkeypatch):
    check_disk = _module()
    asked = []

    def disk_usage(path):
        asked.append(path)
        return SimpleNamespace(total=100e9, used=92.5e9, free=7.5e9)

    monkeypatch.setattr(check_disk.shutil, "disk_usage", disk_usage)
    venv = tmp_path / "missing" / ".venv"
    assert check_disk.check(venv, need_gb=7.5) is None
    message = check_disk.check(venv, need_gb=7.6)
    assert asked == [tmp_path.resolve()] * 2  # the filesystem the venv will be created on
    assert message is not None
    assert str(venv) in message and str(tmp_path.resolve()) in message
    assert "7.6 GB" in message and "7.5 GB free" in message
    assert "make VENV=" in message and "VENV_NEED_GB=0" in message


def test_script_exit_status_and_message(tmp_path):
    venv = tmp_path / ".venv"
    ok = subprocess.run([sys.executable, str(SCRIPT), str(venv), "--need-gb", "0"],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stderr == ""
    short = subprocess.run([sys.executable, str(SCRIPT), str(venv), "--need-gb", "1e12"],
                           capture_output=True, text=True)
    assert short.returncode == 1
    assert "Not enough disk space" in short.stderr and str(venv) in short.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_stops_before_creating_a_venv_that_does_not_fit(tmp_path):
    venv = tmp_path / "venv"
    result = subprocess.run(
        ["make", "-C", str(ROOT), f"VENV={venv}", f"PYTHON={sys.executable}",
         "VENV_NEED_GB=1e12", "venv"],
        capture_output=True, text=True)
    assert result.returncode != 0
    assert "Not enough disk space" in result.stderr
    assert not venv.exists()  # neither the environment nor pip ever started


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_checks_again_after_an_install_that_did_not_finish(tmp_path):
    """A half-filled environment (python there, no stamp: pip ran out of space) is checked again."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    result = subprocess.run(
        ["make", "-C", str(ROOT), f"VENV={venv}", f"PYTHON={sys.executable}",
         "VENV_NEED_GB=1e12", "venv"],
        capture_output=True, text=True)
    assert result.returncode != 0 and "Not enough disk space" in result.stderr
    assert not (venv / ".amalib-installed").exists()
