"""Ask the installed ComfyUI itself: run a probe script in a child process inside ComfyUI's folder
(as ComfyUI imports custom nodes) and read the JSON it prints last."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import pytest

from scripts.comfy_harness import ComfyNotInstalledError, ensure_installed
from scripts.pack_loader import REPO_ROOT

#: What runs before every probe: in ComfyUI's folder (``comfy``), with ``comfy_api.latest`` imported
#: first, as ComfyUI has before it loads any custom node, and the repository (``root``) importable.
PREAMBLE = """\
import asyncio, json, os, sys
comfy, root = sys.argv[1], sys.argv[2]
sys.path.insert(0, comfy)
os.chdir(comfy)
import comfy_api.latest
sys.path.insert(0, root)
"""


def run_in_comfy(probe: str, missing: Callable[[str], NoReturn] = pytest.skip) -> Any:
    """Run ``probe`` (Python source, after ``PREAMBLE``) and return its last stdout line parsed as
    JSON; ``missing(reason)`` when ComfyUI is not installed."""
    try:
        comfy = ensure_installed()
    except ComfyNotInstalledError as exc:
        missing(str(exc))
    done = subprocess.run(
        [sys.executable, "-c", PREAMBLE + probe, str(comfy), str(REPO_ROOT)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=str(comfy),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
