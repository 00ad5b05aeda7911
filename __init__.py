"""ComfyUI entry point of the WaveSpeed FLUX.1 Kontext [max] node pack.

Thin on purpose: it only exposes the node mappings. Heavy modules (requests, torch, the codec)
load on first use, so importing the pack costs a few milliseconds, and a missing dependency is
reported in the log instead of breaking ComfyUI's start-up.
"""

import importlib.util
import logging

_log = logging.getLogger("wavespeed")
_REQUIRED = ("requests", "numpy", "PIL", "torch")

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}
WEB_DIRECTORY = "./web"  # small UI extension: node colours, default sizes, error toast

_missing = [name for name in _REQUIRED if importlib.util.find_spec(name) is None]
if _missing:
    _log.error(
        "WaveSpeed Kontext nodes are disabled: missing Python package(s) %s. Install them with "
        "'pip install -r requirements.txt' in this pack's folder, using ComfyUI's Python.",
        ", ".join(_missing),
    )
else:
    try:
        from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
    except Exception:  # never take ComfyUI down with us
        _log.exception("WaveSpeed Kontext nodes failed to load; please report this with the log above.")

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
