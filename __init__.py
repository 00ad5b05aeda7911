"""ComfyUI entry point of the WaveSpeed FLUX.1 Kontext [max] node pack.

Thin on purpose. The pack's nodes are V3 nodes (``comfy_api.latest``, as ComfyUI's own API nodes;
both supported releases, 0.3.75 and 0.33.0, take them), registered through ``comfy_entrypoint``;
the node modules (nodes/, listed in nodes/__init__.py) are imported only when ComfyUI calls it, from
the ``comfy_api.latest`` ComfyUI has already imported. No ``NODE_CLASS_MAPPINGS`` is exported: ComfyUI would take it over the
entry point. Heavy modules (requests, torch, the codec) load on first use, so importing the pack costs
a few milliseconds, and a missing dependency is reported in the log instead of breaking ComfyUI's
start-up.
"""

import importlib.util
import logging
from typing import Any

_log = logging.getLogger("wavespeed")
_REQUIRED = ("requests", "numpy", "PIL", "torch")
_FAILED = "WaveSpeed Kontext nodes failed to load; please report this with the log above."

WEB_DIRECTORY = "./web"  # small UI extension: node colours, default sizes, error toast

_missing = [name for name in _REQUIRED if importlib.util.find_spec(name) is None]
if _missing:  # register nothing, say why in one line
    _log.error(
        "WaveSpeed Kontext nodes are disabled: missing Python package(s) %s. Install them with "
        "'pip install -r requirements.txt' in this pack's folder, using ComfyUI's Python.",
        ", ".join(_missing),
    )
else:

    async def comfy_entrypoint() -> Any:
        """ComfyUI's V3 hook: the extension listing this pack's nodes (nodes/__init__.py)."""
        try:
            from .nodes import WaveSpeedExtension
        except Exception:  # ComfyUI logs only the message: give the traceback, then let it skip us
            _log.exception(_FAILED)
            raise
        return WaveSpeedExtension()


__all__ = ["WEB_DIRECTORY"]
