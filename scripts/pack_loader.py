"""Load this repository as a ComfyUI custom node pack would be loaded: the repo root as a package
under a name that is not its folder name, so the pack's relative imports run exactly as in ComfyUI;
its node classes on ComfyUI's own ``comfy_api.latest``, and a node run as ComfyUI runs it. Used by the
tests, the benchmarks, the scripts and the crash-recovery worker (one copy of this logic)."""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Coroutine
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
PACK_NAME = "wavespeed_kontext_pack"


def load_pack() -> ModuleType:
    """Import (once per process) and return the pack package, with its facade ``wavespeed`` (ComfyUI
    imports neither the facade nor the nodes with the pack: they load when it calls comfy_entrypoint)."""
    if PACK_NAME in sys.modules:
        return sys.modules[PACK_NAME]
    spec = importlib.util.spec_from_file_location(
        PACK_NAME, REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = module
    spec.loader.exec_module(module)
    importlib.import_module(f"{PACK_NAME}.wavespeed")  # the facade (light): ``pack.wavespeed`` for tools
    return module


@functools.cache
def load_nodes() -> dict[str, Any]:
    """The pack's node classes by node id (nodes/__init__.py), as ComfyUI gets them: ComfyUI's own
    ``comfy_api.latest`` is imported first (from the vendored 0.33.0 when no ComfyUI has been loaded),
    as ComfyUI does before it loads a custom node.

    Only ``comfy_api`` stays: the ComfyUI modules it brought along (``folder_paths``, ``comfy``) are
    forgotten and ComfyUI's folder leaves ``sys.path``, so the pack runs as outside ComfyUI (no
    ComfyUI user folder for the journal, no ComfyUI Cancel flag or progress bar)."""
    if "comfy_api.latest" not in sys.modules:
        from scripts.comfy_server import DEFAULT_COMFY_DIR  # the 0.33.0 tree bootstrap lays out

        before = set(sys.modules)
        sys.path.insert(0, str(DEFAULT_COMFY_DIR))
        try:
            importlib.import_module("comfy_api.latest")
        finally:
            sys.path.remove(str(DEFAULT_COMFY_DIR))
        for name in set(sys.modules) - before:
            if name.split(".")[0] in ("folder_paths", "comfy"):
                del sys.modules[name]
    catalog = importlib.import_module(f"{load_pack().__name__}.nodes")
    return {node.define_schema().node_id: node for node in catalog.NODES}


async def run_node(node: Any, unique_id: str | None = None, **inputs: Any) -> tuple[Any, ...]:
    """Run a node's ``execute`` the way ComfyUI 0.33.0 does (execution.py): on a clone of the class
    holding the hidden inputs (here the node id), with the inputs by name; its outputs."""
    from comfy_api.internal import make_locked_method_func
    from comfy_api.latest import io

    node.VALIDATE_CLASS()
    clone = node.PREPARE_CLASS_CLONE({"hidden_inputs": {io.Hidden.unique_id: unique_id}})
    output = await make_locked_method_func(node, node.FUNCTION, clone)(**inputs)
    return tuple(output.args)


def call(name: str, *values: Any, unique_id: str | None = None, **inputs: Any) -> Coroutine[Any, Any, Any]:
    """Node ``name``'s run (a coroutine: its outputs as a tuple): ``values`` are its first inputs in
    the order its schema declares them, ``inputs`` the others by name."""
    declared = _input_ids(name)
    return run_node(
        load_nodes()[name], unique_id, **dict(zip(declared[: len(values)], values, strict=True)), **inputs
    )


@functools.cache
def _input_ids(name: str) -> list[str]:
    """Node ``name``'s inputs in the order its schema declares them."""
    return [i.id for i in load_nodes()[name].define_schema().inputs]
