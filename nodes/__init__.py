"""The ComfyUI-facing layer: what each node does (one plain class per node, no ComfyUI import) and,
in ``v3/``, how ComfyUI sees it; HTTP and image work live in ``wavespeed/``.

``NODES`` names the plain class doing each node's work by its node id: tests, the benchmarks and the
scripts call them without ComfyUI (the V3 nodes in ``v3/`` delegate to the same classes).
"""

from __future__ import annotations

from .batch import FluxKontextMaxBatch
from .connection import WaveSpeedConnectionCheck
from .edit import FluxKontextMaxEdit, FluxKontextMaxMultiReference
from .generate import FluxKontextMaxGenerate
from .poll import WaveSpeedPollResult
from .recent import WaveSpeedRecentTasks

NODES: dict[str, type] = {
    "FluxKontextMaxGenerate": FluxKontextMaxGenerate,
    "FluxKontextMaxEdit": FluxKontextMaxEdit,
    "FluxKontextMaxMultiReference": FluxKontextMaxMultiReference,
    "FluxKontextMaxBatch": FluxKontextMaxBatch,
    "WaveSpeedPollResult": WaveSpeedPollResult,
    "WaveSpeedRecentTasks": WaveSpeedRecentTasks,
    "WaveSpeedConnectionCheck": WaveSpeedConnectionCheck,
}
