"""Loading the pack stays light: heavy modules load on first use, not at ComfyUI start-up.

A structural check (which modules a fresh interpreter holds after loading the pack), not a timing:
bench/ measures the milliseconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "numpy", "PIL", "requests", "urllib3", "asyncio", "tempfile")

LOADER = f"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location(
    "pack_under_test", {str(ROOT / "__init__.py")!r}, submodule_search_locations=[{str(ROOT)!r}]
)
module = importlib.util.module_from_spec(spec)
sys.modules["pack_under_test"] = module
spec.loader.exec_module(module)
print(json.dumps({{"nodes": sorted(module.NODE_CLASS_MAPPINGS),
                  "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def test_loading_the_pack_registers_nodes_without_heavy_imports() -> None:
    out = subprocess.run([sys.executable, "-c", LOADER], capture_output=True, text=True, check=True, cwd="/")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"FluxKontextMaxGenerate", "WaveSpeedPollResult"} <= set(result["nodes"])
    assert result["loaded"] == [], f"imported at start-up: {result['loaded']}"


def test_a_missing_dependency_logs_one_clear_line_instead_of_breaking_startup() -> None:
    blocked = "import sys; sys.modules['requests'] = None  # as if requests were not installed\n"
    out = subprocess.run(
        [sys.executable, "-c", blocked + LOADER], capture_output=True, text=True, check=True, cwd="/"
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["nodes"] == []
    assert "missing Python package(s) requests" in out.stderr and "requirements.txt" in out.stderr
