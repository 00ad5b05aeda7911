"""Loading the pack stays light: heavy modules load on first use, not at ComfyUI start-up.

A structural check (which modules a fresh interpreter holds after loading the pack), not a timing:
bench/ measures the milliseconds.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from scripts.pack_loader import REPO_ROOT

HEAVY = ("torch", "numpy", "PIL", "requests", "urllib3", "asyncio", "tempfile")

LOADER = f"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location(
    "pack_under_test", {str(REPO_ROOT / "__init__.py")!r}, submodule_search_locations=[{str(REPO_ROOT)!r}]
)
module = importlib.util.module_from_spec(spec)
sys.modules["pack_under_test"] = module
spec.loader.exec_module(module)
mapping = module.NODE_CLASS_MAPPINGS
print(json.dumps({{"nodes": None if mapping is None else sorted(mapping),
                  "entrypoint": hasattr(module, "comfy_entrypoint"),
                  "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def _python(source: str) -> subprocess.CompletedProcess[str]:
    """Run ``source`` in a fresh interpreter outside the repo (as ComfyUI's process would import the pack)."""
    return subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, check=True, cwd="/")


def test_loading_the_pack_registers_nodes_without_heavy_imports() -> None:
    out = _python(LOADER)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"FluxKontextMaxGenerate", "WaveSpeedPollResult"} <= set(result["nodes"])
    assert result["loaded"] == [], f"imported at start-up: {result['loaded']}"


# Inside ComfyUI 0.3.75+, comfy_api.latest is imported before any custom node: a stand-in with
# io.ComfyNode is enough to put the pack in V3 mode (the real one is tested in test_v3_schema.py).
IN_COMFYUI = """
import sys, types
latest = types.ModuleType("comfy_api.latest")
latest.io = types.SimpleNamespace(ComfyNode=type("ComfyNode", (), {{}}))
sys.modules["comfy_api.latest"] = latest
"""


def test_inside_comfyui_loading_exports_only_the_v3_entry_point_and_stays_light() -> None:
    out = _python(IN_COMFYUI.format() + LOADER)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["nodes"] is None and result["entrypoint"] is True  # ComfyUI prefers a mapping: none
    assert result["loaded"] == [], f"imported at start-up: {result['loaded']}"


def test_outside_comfyui_the_v1_mapping_is_exported_without_an_entry_point() -> None:
    out = _python(LOADER)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["entrypoint"] is False and len(result["nodes"]) == 6


def test_a_missing_dependency_logs_one_clear_line_instead_of_breaking_startup() -> None:
    blocked = "import sys; sys.modules['requests'] = None  # as if requests were not installed\n"
    out = _python(blocked + LOADER)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["nodes"] == [] and result["entrypoint"] is False
    assert "missing Python package(s) requests" in out.stderr and "requirements.txt" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_a_missing_dependency_inside_comfyui_registers_nothing_either() -> None:
    blocked = "import sys; sys.modules['requests'] = None\n"
    out = _python(IN_COMFYUI.format() + blocked + LOADER)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["nodes"] == [] and result["entrypoint"] is False
    assert "missing Python package(s) requests" in out.stderr


def test_a_broken_node_import_inside_comfyui_logs_its_traceback_and_registers_nothing() -> None:
    """ComfyUI logs only the message of a failing comfy_entrypoint; the pack adds the traceback."""
    call = (
        "import asyncio\n"
        "try:\n"
        "    asyncio.run(module.comfy_entrypoint())\n"
        "except ImportError as exc:\n"
        "    print('raised', type(exc).__name__)\n"
    )
    # the stand-in comfy_api.latest has no ComfyExtension: importing nodes/v3.py fails
    out = _python(IN_COMFYUI.format() + LOADER + call)
    assert out.stdout.strip().splitlines()[-1] == "raised ImportError"
    assert "WaveSpeed Kontext nodes failed to load" in out.stderr and "Traceback" in out.stderr


def test_the_pack_has_one_import_name_in_a_test_run() -> None:
    """A second name would load a second copy of the pack's process-wide registries (tests/conftest.py)."""
    with pytest.raises(ImportError, match="wavespeed_kontext_pack.wavespeed"):
        importlib.import_module("wavespeed.api.errors")
