"""A faithful local emulator of the WaveSpeed v3 REST API (FLUX.1 Kontext models) for tests and demos.

Pure Python + numpy + Pillow; it knows nothing of ComfyUI or of the client package.

    from emulator import Emulator
    with Emulator(api_keys=("k",), inference_s=0.2) as emu:
        ...  # point a client at emu.base_url
"""

from __future__ import annotations

from .behaviour.fault_rules import FAULT_KINDS, ROUTES
from .behaviour.imagegen import (
    PREFERRED_KONTEXT_RESOLUTIONS,
    nearest_kontext_size,
    render_edit,
    render_text_to_image,
    size_for_aspect_ratio,
)
from .behaviour.model_registry import MODELS
from .behaviour.tasks import Task
from .behaviour.tiers import TIERS, Tier
from .server import KIND, MAX_UPLOAD_BYTES, Emulator, RequestRecord

__all__ = [
    "FAULT_KINDS",
    "KIND",
    "MAX_UPLOAD_BYTES",
    "MODELS",
    "PREFERRED_KONTEXT_RESOLUTIONS",
    "ROUTES",
    "TIERS",
    "Emulator",
    "RequestRecord",
    "Task",
    "Tier",
    "nearest_kontext_size",
    "render_edit",
    "render_text_to_image",
    "size_for_aspect_ratio",
]
