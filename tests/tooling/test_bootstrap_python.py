"""Which Python scripts/bootstrap.sh builds the venv with (issue 19): the newest CPython 3.10-3.13 on
PATH that runs and can make a venv, ``PYTHON=`` first, an existing venv's own Python kept, and one
line naming what is missing when none fits. Runs the real script (``--which-python`` stops before
any install) with a PATH of real interpreters, a failing pyenv-like shim and a Python without its
venv module (Debian's split-off python3.X-venv)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.pack_loader import REPO_ROOT

BASH = shutil.which("bash") or "/bin/bash"
TOOLS = ("dirname", "cat", "rm", "sed")  # what the script runs before it stops


def _real(minor: int) -> str | None:
    """A real CPython 3.<minor> binary here (this one, one on PATH, or a pyenv build), resolved past
    any pyenv shim: a shim linked under another name would not run."""
    found = [sys.executable] if sys.version_info[:2] == (3, minor) else []
    found += [shutil.which(f"python3.{minor}") or ""]
    found += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/3.{minor}.*/bin/python3.{minor}")))
    for path in filter(None, found):
        ask = 'import sys; print(getattr(sys, "_base_executable", "") or sys.executable)'
        out = subprocess.run([path, "-c", ask], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    return None


def _bin(tmp_path: Path, **pythons: str) -> Path:
    """A PATH folder with the shell tools and ``pythons`` (name -> real path, or a shell script)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (folder / tool).symlink_to(found)
    for name, target in pythons.items():
        if target.startswith("#!"):
            (folder / name).write_text(target)
            (folder / name).chmod(0o755)
        else:
            (folder / name).symlink_to(target)
    return folder


def _which(folder: Path, tmp_path: Path, python: str | None = None, venv: str = "v") -> tuple[int, str, str]:
    env = {"PATH": str(folder), "HOME": str(tmp_path)}
    if python:
        env["PYTHON"] = python
    out = subprocess.run(
        [BASH, str(REPO_ROOT / "scripts/bootstrap.sh"), "--which-python", "--venv", str(tmp_path / venv)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    return out.returncode, out.stdout.strip(), out.stderr.strip()


SHIM = '#!/bin/sh\necho "pyenv: $(basename "$0"): command not found" >&2\nexit 127\n'


def _without_venv(real: str) -> str:
    """A Python whose venv module is missing, as Debian's python3.X without python3.X-venv."""
    code = 'import sys; sys.modules["ensurepip"] = None; exec(compile(sys.stdin.read(), "<stdin>", "exec"))'
    return f"#!/bin/sh\nexec {real} -c '{code}'\n"


def test_the_newest_that_runs_is_taken(tmp_path: Path) -> None:
    py311, py310 = _real(11) or _real(12), _real(10)
    if not (py311 and py310):
        pytest.skip("needs two CPythons of 3.10-3.13")
    folder = _bin(tmp_path, **{"python3.13": SHIM, "python3.12": py311, "python3.10": py310})
    rc, out, err = _which(folder, tmp_path)
    assert rc == 0 and out.startswith("python3.12 3.1"), (out, err)


def test_python_env_wins_and_a_missing_venv_module_is_skipped(tmp_path: Path) -> None:
    newer, older = _real(12) or _real(13), _real(10) or _real(11)
    if not (newer and older):
        pytest.skip("needs two CPythons of 3.10-3.13")
    folder = _bin(tmp_path, **{"python3.13": _without_venv(newer), "python3.11": older})
    rc, out, _ = _which(folder, tmp_path)
    assert rc == 0 and out.startswith("python3.11 ")
    rc, out, _ = _which(folder, tmp_path, python=str(folder / "python3.11"))
    assert rc == 0 and out.startswith(f"{folder / 'python3.11'} ")


def test_none_fits_one_line_names_what_is_missing(tmp_path: Path) -> None:
    py39 = next(iter(sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9.*/bin/python3.9")))), None)
    real = _real(11) or _real(12) or _real(13) or _real(10)
    assert real
    pythons = {"python3.12": _without_venv(real), "python3.13": SHIM}
    if py39:
        pythons["python3"] = py39
    folder = _bin(tmp_path, **pythons)
    rc, out, err = _which(folder, tmp_path)
    assert rc == 1 and out == "" and len(err.splitlines()) == 1, err
    assert "no CPython 3.10 to 3.13 found" in err and "PYTHON=" in err
    assert "apt-get install python3.1" in err and "-venv" in err  # the missing venv module, named
    assert "python3.13: does not run" in err
    if py39:
        assert "python3: CPython 3.9" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, _, err = _which(_bin(empty), empty)
    assert rc == 1 and "none of python3.13, python3.12, python3.11, python3.10, python3 is on PATH" in err


def test_an_existing_venv_keeps_its_python_and_a_different_python_is_refused(tmp_path: Path) -> None:
    mine, other = _real(11), _real(13) or _real(12) or _real(10)
    if not (mine and other):
        pytest.skip("needs two CPythons of 3.10-3.13")
    subprocess.run([mine, "-m", "venv", "--without-pip", str(tmp_path / "v")], check=True, timeout=120)
    folder = _bin(tmp_path, **{"python3.13": other})
    rc, out, _ = _which(folder, tmp_path)
    assert rc == 0 and out.startswith(f"{tmp_path / 'v' / 'bin' / 'python'} 3.11.")
    rc, out, err = _which(folder, tmp_path, python=other)
    assert rc == 1 and len(err.splitlines()) == 1 and "remove" in err and "test.sh --python" in err


def test_a_python_with_its_cpu_torch_on_disk_wins_over_a_newer_one_without(tmp_path: Path) -> None:
    """A newer Python without a CPU torch wheel would download PyPI's CUDA build (~3.7 GB): the
    newest one whose ``torch-2.13.0+cpu`` wheel lies in a pip find-links folder is taken instead."""
    newer, older = _real(13) or _real(12), _real(11) or _real(10)
    if not (newer and older):
        pytest.skip("needs two CPythons of 3.10-3.13")
    old_minor = subprocess.run(
        [older, "-c", "import sys; print(sys.version_info[1])"], capture_output=True, text=True
    )
    tag = f"cp3{old_minor.stdout.strip()}"
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / f"torch-2.13.0+cpu-{tag}-{tag}-manylinux_2_28_x86_64.whl").write_bytes(b"")
    folder = _bin(tmp_path, **{"python3.13": newer, "python3.10": older})
    env = {
        "PATH": str(folder),
        "HOME": str(tmp_path),
        "PIP_FIND_LINKS": str(wheels),
        "PIP_CONFIG_FILE": "/dev/null",
    }
    cmd = [BASH, str(REPO_ROOT / "scripts/bootstrap.sh"), "--which-python", "--venv", str(tmp_path / "v")]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("python3.10 3."), (out.stdout, out.stderr)
