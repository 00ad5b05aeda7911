"""Drive a real headless ComfyUI (0.33.0; 0.3.75 and others via COMFYUI_DIR) over its HTTP + websocket
API, for the e2e tests, the demo and the benchmarks. One import for callers; three modules, one job each:

  scripts/comfy_server.py      server lifecycle: find the tree, start it (pack + torchvision CPU shim
                               in custom_nodes, the frontend its release pins), HTTP helpers, stop it
  scripts/workflow_convert.py  UI-format workflow -> API prompt, strictly, like the frontend
  scripts/prompt_runner.py     queue a prompt, collect its websocket events, outputs and saved files

Why a harness: unit tests cannot prove that ComfyUI loads the pack, that the shipped UI-format
workflows still match the nodes' widget order, or that a prompt really runs and saves images. It
never imports the pack's own code.

    from scripts.comfy_harness import ComfyServer, run_workflow_file
    with ComfyServer(env={"WAVESPEED_BASE_URL": url, "WAVESPEED_API_KEY": key}) as server:
        result = run_workflow_file(server, "example_workflows/Text to image - Kontext [max].json")
        assert result.ok, result.error_line()
"""

from __future__ import annotations

from scripts.comfy_server import (
    COMFY_CACHE,
    DEFAULT_COMFY_DIR,
    NEWEST_VERSION,
    OLDEST_COMFY_DIR,
    OLDEST_VERSION,
    PACK_NAME,
    REPO_ROOT,
    SHIM_DIR,
    SHIM_NAME,
    ComfyNotInstalledError,
    ComfyServer,
    ComfyServerError,
    comfy_dir,
    comfy_version,
    ensure_installed,
    free_port,
    frontend_root,
    interrupt,
    object_info,
    upload_image,
)
from scripts.prompt_runner import PromptResult, run_prompt, run_workflow_file
from scripts.workflow_convert import (
    CONTROL_VALUES,
    FRONTEND_ONLY_NODES,
    MODE_BYPASS,
    MODE_MUTED,
    UPLOAD_FLAGS,
    WIDGET_TYPES,
    load_workflow,
    ui_to_api,
)

__all__ = [
    "COMFY_CACHE",
    "CONTROL_VALUES",
    "DEFAULT_COMFY_DIR",
    "FRONTEND_ONLY_NODES",
    "MODE_BYPASS",
    "MODE_MUTED",
    "NEWEST_VERSION",
    "OLDEST_COMFY_DIR",
    "OLDEST_VERSION",
    "PACK_NAME",
    "REPO_ROOT",
    "SHIM_DIR",
    "SHIM_NAME",
    "UPLOAD_FLAGS",
    "WIDGET_TYPES",
    "ComfyNotInstalledError",
    "ComfyServer",
    "ComfyServerError",
    "PromptResult",
    "comfy_dir",
    "comfy_version",
    "ensure_installed",
    "free_port",
    "frontend_root",
    "interrupt",
    "load_workflow",
    "object_info",
    "run_prompt",
    "run_workflow_file",
    "ui_to_api",
    "upload_image",
]
