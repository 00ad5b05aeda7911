"""ComfyUI entry point of the WaveSpeed FLUX.1 Kontext [max] node pack.

Thin on purpose. Inside a ComfyUI that carries the V3 node schema (``comfy_api.latest``, already
imported by ComfyUI itself before any custom node loads) the pack exports ``comfy_entrypoint``, and
the V3 nodes (nodes/v3.py) are built only when ComfyUI calls it. Anywhere else (tests, scripts, an
older ComfyUI) it exports the V1 ``NODE_CLASS_MAPPINGS``, which ComfyUI would prefer over the entry
point, so the two are never exported together. Heavy modules (requests, torch, the codec) load on
first use, so importing the pack costs a few milliseconds, and a missing dependency is reported in
the log instead of breaking ComfyUI's start-up.
"""

import importlib.util
import logging
import sys
from typing import Any

_log = logging.getLogger("wavespeed")
_REQUIRED = ("requests", "numpy", "PIL", "torch")

NODE_CLASS_MAPPINGS: dict[str, type] | None = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}
WEB_DIRECTORY = "./web"  # small UI extension: node colours, default sizes, error toast


def _v3_available() -> bool:
    """True inside ComfyUI 0.3.75+: it imported comfy_api.latest with io.ComfyNode before loading us."""
    latest = sys.modules.get("comfy_api.latest")
    return latest is not None and hasattr(getattr(latest, "io", None), "ComfyNode")


async def comfy_entrypoint() -> Any:
    """ComfyUI's V3 hook: the extension listing this pack's five nodes."""
    try:
        from .nodes.v3 import WaveSpeedExtension
    except Exception:  # ComfyUI logs only the message: give the traceback, then let it skip us
        _log.exception("WaveSpeed Kontext nodes failed to load; please report this with the log above.")
        raise
    return WaveSpeedExtension()


_missing = [name for name in _REQUIRED if importlib.util.find_spec(name) is None]
if _missing:
    del comfy_entrypoint  # register nothing, say why in one line
    _log.error(
        "WaveSpeed Kontext nodes are disabled: missing Python package(s) %s. Install them with "
        "'pip install -r requirements.txt' in this pack's folder, using ComfyUI's Python.",
        ", ".join(_missing),
    )
elif _v3_available():
    NODE_CLASS_MAPPINGS = None  # ComfyUI would take a mapping over comfy_entrypoint
else:
    del comfy_entrypoint
    try:
        from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
    except Exception:  # never take ComfyUI down with us
        _log.exception("WaveSpeed Kontext nodes failed to load; please report this with the log above.")

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
