"""The ComfyUI-facing layer: one module per node (its schema, its cache rule and its ``execute``),
what they share in ``shared/``, and here the list of the node classes and the extension that hands
it to ComfyUI (V3, ``comfy_api.latest``; plain custom nodes, not comfy.org partner nodes). HTTP and
image work live in ``wavespeed/``.

Adding a node is one module in nodes/ and one entry in ``NODES``. Imported only by
``comfy_entrypoint`` (the pack's /__init__.py: importing the pack imports nothing of this), inside
ComfyUI (0.3.75 and 0.33.0), which has imported ``comfy_api.latest`` before loading any custom node;
tests, benchmarks and scripts import it the same way (scripts/pack_loader.py ``load_nodes``).
"""

from __future__ import annotations

from typing import Any

from comfy_api.latest import ComfyExtension

from .batch import FluxKontextMaxBatch
from .connection import WaveSpeedConnectionCheck
from .edit import FluxKontextMaxEdit, FluxKontextMaxMultiReference
from .generate import FluxKontextMaxGenerate
from .poll import WaveSpeedPollResult
from .recent import WaveSpeedRecentTasks
from .shared.price_route import serve_prices

#: In the "Add Node" menu's order; the node ids are what saved workflows name.
NODES: list[Any] = [
    FluxKontextMaxGenerate,
    FluxKontextMaxEdit,
    FluxKontextMaxMultiReference,
    FluxKontextMaxBatch,
    WaveSpeedPollResult,
    WaveSpeedRecentTasks,
    WaveSpeedConnectionCheck,
]


class WaveSpeedExtension(ComfyExtension):  # type: ignore[misc]  # comfy_api is untyped
    async def get_node_list(self) -> list[Any]:
        """The nodes; also serves their prices to the web extension (0.3.75 never calls on_load)."""
        for node in NODES:
            node.define_schema()  # fills widgets.PRICE_RULES
        serve_prices()
        return list(NODES)
