"""The ComfyUI-facing layer: node classes only; HTTP and image work live in ``wavespeed/``."""

from __future__ import annotations

from .batch import FluxKontextMaxBatch
from .edit import FluxKontextMaxEdit, FluxKontextMaxMultiReference
from .generate import FluxKontextMaxGenerate
from .poll import WaveSpeedPollResult
from .recent import WaveSpeedRecentTasks

NODE_CLASS_MAPPINGS: dict[str, type] = {
    "FluxKontextMaxGenerate": FluxKontextMaxGenerate,
    "FluxKontextMaxEdit": FluxKontextMaxEdit,
    "FluxKontextMaxMultiReference": FluxKontextMaxMultiReference,
    "FluxKontextMaxBatch": FluxKontextMaxBatch,
    "WaveSpeedPollResult": WaveSpeedPollResult,
    "WaveSpeedRecentTasks": WaveSpeedRecentTasks,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "FluxKontextMaxGenerate": "FLUX.1 Kontext [max] Generate (WaveSpeed)",
    "FluxKontextMaxEdit": "FLUX.1 Kontext [max] Edit (WaveSpeed)",
    "FluxKontextMaxMultiReference": "FLUX.1 Kontext [max] Multi-Reference (WaveSpeed)",
    "FluxKontextMaxBatch": "FLUX.1 Kontext [max] Batch (WaveSpeed)",
    "WaveSpeedPollResult": "WaveSpeed Poll Result",
    "WaveSpeedRecentTasks": "WaveSpeed Recent Tasks",
}
