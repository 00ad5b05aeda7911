"""The pack's nodes as ComfyUI registers them: V3 schemas (``comfy_api.latest``), plain custom nodes
(not comfy.org partner nodes), and the route that serves their prices to the web extension.

Imported only by ``comfy_entrypoint``, inside ComfyUI (0.3.75 and 0.33.0), which has imported
``comfy_api.latest`` before loading any custom node. Each node here declares its schema once and hands
its inputs to a plain class in nodes/ that does the work: those classes import nothing of ComfyUI, so
the tests, the benchmarks and the scripts call them without it.
"""

from __future__ import annotations

from typing import Any

from comfy_api.latest import ComfyExtension

from .batch_node import FluxKontextMaxBatch
from .check_node import WaveSpeedConnectionCheck
from .price_route import serve_prices
from .submit_nodes import FluxKontextMaxEdit, FluxKontextMaxGenerate, FluxKontextMaxMultiReference
from .task_nodes import WaveSpeedPollResult, WaveSpeedRecentTasks

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
            node.define_schema()  # fills common.PRICE_RULES
        serve_prices()
        return list(NODES)
