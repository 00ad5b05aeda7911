"""scripts/comfy_harness.py after its split (issue 14): three modules with one job each, the old names
still importable from comfy_harness, imports pointing one way (runner -> server, converter)."""

from __future__ import annotations

import ast

import pytest

from scripts import comfy_harness, comfy_server, layout, prompt_runner, workflow_convert
from scripts.pack_loader import REPO_ROOT

SCRIPTS = REPO_ROOT / "scripts"

# comfy_harness.__all__ before the split, plus the constants the tests and benchmarks import from it
NAMES_BEFORE_THE_SPLIT = [
    "ComfyNotInstalledError",
    "ComfyServer",
    "ComfyServerError",
    "PromptResult",
    "comfy_dir",
    "ensure_installed",
    "free_port",
    "interrupt",
    "load_workflow",
    "object_info",
    "run_prompt",
    "run_workflow_file",
    "ui_to_api",
    "upload_image",
    "PACK_NAME",
    "REPO_ROOT",
    "DEFAULT_COMFY_DIR",
    "SHIM_DIR",
    "SHIM_NAME",
    "FRONTEND_ONLY_NODES",
    "WIDGET_TYPES",
    "CONTROL_VALUES",
    "UPLOAD_FLAGS",
    "MODE_MUTED",
    "MODE_BYPASS",
]


@pytest.mark.parametrize("name", NAMES_BEFORE_THE_SPLIT)
def test_every_old_name_is_still_exported_by_comfy_harness(name: str) -> None:
    assert name in comfy_harness.__all__
    homes = [m for m in (comfy_server, workflow_convert, prompt_runner) if name in _defined(m.__name__)]
    assert len(homes) == 1, f"{name} is defined in {len(homes)} modules"
    assert getattr(comfy_harness, name) is getattr(homes[0], name)


def _defined(module: str) -> set[str]:
    """Names a module defines at top level (not the ones it imports)."""
    tree = layout.parse_source(SCRIPTS / f"{module.removeprefix('scripts.')}.py")
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _imports(module: str) -> set[str]:
    tree = layout.parse_source(SCRIPTS / f"{module}.py")
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("scripts."):
            found.add(node.module.removeprefix("scripts."))
    return found


def test_modules_have_one_job_and_import_one_way() -> None:
    assert _imports("comfy_server") == set()
    assert _imports("workflow_convert") == set()
    assert _imports("prompt_runner") == {"comfy_server", "workflow_convert"}
    assert _imports("comfy_harness") == {"comfy_server", "workflow_convert", "prompt_runner"}
    for module in ("comfy_server", "workflow_convert", "prompt_runner", "comfy_harness"):
        lines = len((SCRIPTS / f"{module}.py").read_text(encoding="utf-8").splitlines())
        assert lines <= 400, f"scripts/{module}.py has {lines} lines"
