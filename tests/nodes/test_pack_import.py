"""Loading the pack stays light: heavy modules load on first use, not at ComfyUI start-up.

A structural check (which modules a fresh interpreter holds after loading the pack), not a timing:
bench/ measures the milliseconds.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from typing import Any

import pytest

from scripts.pack_loader import REPO_ROOT, load_pack

ROOT = REPO_ROOT
HEAVY = ("torch", "numpy", "PIL", "requests", "urllib3", "asyncio", "tempfile", "sqlalchemy", "psycopg")

LOADER = f"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location(
    "pack_under_test", {str(ROOT / "__init__.py")!r}, submodule_search_locations=[{str(ROOT)!r}]
)
module = importlib.util.module_from_spec(spec)
sys.modules["pack_under_test"] = module
spec.loader.exec_module(module)
print(json.dumps({{"nodes": sorted(m for m in sys.modules if m.startswith("pack_under_test.nodes")),
                  "mapping": hasattr(module, "NODE_CLASS_MAPPINGS"),
                  "entrypoint": hasattr(module, "comfy_entrypoint"),
                  "comfy": [m for m in sys.modules if m.startswith("comfy")],
                  "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def _load(prelude: str = "") -> tuple[dict[str, Any], str]:
    out = subprocess.run(
        [sys.executable, "-c", prelude + LOADER], capture_output=True, text=True, check=True, cwd="/"
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result, out.stderr


def test_loading_the_pack_exports_only_the_v3_entry_point_without_heavy_imports() -> None:
    result, _ = _load()
    assert result["entrypoint"] is True
    assert result["mapping"] is False  # ComfyUI would take a NODE_CLASS_MAPPINGS over comfy_entrypoint
    assert result["loaded"] == [], f"imported at start-up: {result['loaded']}"
    # the node modules (and comfy_api) load when ComfyUI calls comfy_entrypoint; test_v3_schema.py
    # checks the seven nodes it registers
    assert result["nodes"] == [] and result["comfy"] == []


def test_a_missing_dependency_logs_one_clear_line_instead_of_breaking_startup() -> None:
    blocked = "import sys; sys.modules['requests'] = None  # as if requests were not installed\n"
    result, stderr = _load(blocked)
    assert result["nodes"] == [] and result["entrypoint"] is False
    assert "missing Python package(s) requests" in stderr and "requirements.txt" in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_a_broken_node_import_logs_its_traceback_and_registers_nothing() -> None:
    """ComfyUI logs only the message of a failing comfy_entrypoint; the pack adds the traceback."""
    call = (
        "import asyncio\n"
        "try:\n"
        "    asyncio.run(module.comfy_entrypoint())\n"
        "except ImportError as exc:\n"
        "    print('raised', type(exc).__name__)\n"
    )
    # no comfy_api here (outside ComfyUI): importing the node modules fails
    out = subprocess.run(
        [sys.executable, "-c", LOADER + call], capture_output=True, text=True, check=True, cwd="/"
    )
    assert out.stdout.strip().splitlines()[-1] == "raised ModuleNotFoundError"
    assert "WaveSpeed Kontext nodes failed to load" in out.stderr and "Traceback" in out.stderr


def test_the_pack_has_one_import_name_in_a_test_run() -> None:
    """A second name would load a second copy of the pack's process-wide registries (tests/conftest.py)."""
    with pytest.raises(ImportError, match="wavespeed_kontext_pack.wavespeed"):
        importlib.import_module("wavespeed.core.errors")


def test_the_key_file_is_looked_for_in_the_packs_own_folder() -> None:
    """Regression: after nodes/ got subfolders the key file was looked for in nodes/ (README: the pack's folder)."""
    pack = load_pack()
    runtime = importlib.import_module(f"{pack.__name__}.nodes.shared.runtime")
    assert runtime.PACK_KEY_FILE == REPO_ROOT / "wavespeed_api_key.txt"
    assert (runtime.PACK_DIR / "__init__.py").read_text() == (REPO_ROOT / "__init__.py").read_text()
