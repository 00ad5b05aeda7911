"""The ComfyUI-facing layer: node classes only; HTTP and image work live in ``wavespeed/``."""

from __future__ import annotations

from .generate import FluxKontextMaxGenerate
from .poll import WaveSpeedPollResult

NODE_CLASS_MAPPINGS: dict[str, type] = {
    "FluxKontextMaxGenerate": FluxKontextMaxGenerate,
    "WaveSpeedPollResult": WaveSpeedPollResult,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "FluxKontextMaxGenerate": "FLUX.1 Kontext [max] Generate (WaveSpeed)",
    "WaveSpeedPollResult": "WaveSpeed Poll Result",
}
