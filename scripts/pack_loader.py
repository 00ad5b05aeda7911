"""Load this repository as a ComfyUI custom node pack would be loaded: the repo root as a package
under a name that is not its folder name, so the pack's relative imports run exactly as in ComfyUI.
Used by the tests, the benchmarks and the crash-recovery worker (one copy of this logic)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parent.parent
PACK_NAME = "wavespeed_kontext_pack"


def load_pack() -> ModuleType:
    """Import (once per process) and return the pack package."""
    if PACK_NAME in sys.modules:
        return sys.modules[PACK_NAME]
    spec = importlib.util.spec_from_file_location(
        PACK_NAME, REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = module
    spec.loader.exec_module(module)
    return module
