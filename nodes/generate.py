"""FLUX.1 Kontext [max] text-to-image: submit a task and hand its handle to WaveSpeed Poll Result.

The work of the Generate node, without ComfyUI: nodes/v3/ declares the node and calls it."""

from __future__ import annotations

from typing import Any

from ..wavespeed import MODEL_TEXT_TO_IMAGE, KontextRequest, submit_task
from .shared import comfy_bridge as bridge
from .shared.runtime import Watch, run_blocking


class KontextSubmitNode:
    """What every Kontext submit node shares: its cache rule (ComfyUI's ``fingerprint_inputs``)."""

    @classmethod
    def fingerprint_inputs(cls, seed: int = 0, force_rerun: bool = False, **_: Any) -> Any:
        """Seed -1 or force_rerun means 'a new image every time': NaN never equals itself, so
        ComfyUI never reuses a cached result; otherwise the seed (inputs decide as usual)."""
        return float("nan") if seed == -1 or force_rerun else seed


class FluxKontextMaxGenerate(KontextSubmitNode):
    """Text to image: one task, its handle for Poll Result (declared to ComfyUI in nodes/v3/)."""

    MODEL = MODEL_TEXT_TO_IMAGE  # its price per image is the node's price badge

    async def generate(
        self,
        prompt: str,
        seed: int,
        guidance_scale: float,
        aspect_ratio: str,
        sync_mode: bool,
        force_rerun: bool = False,
        unique_id: str | None = None,
    ) -> tuple[Any, str]:
        request = KontextRequest(
            prompt=prompt,
            model=MODEL_TEXT_TO_IMAGE,
            seed=seed,
            guidance_scale=guidance_scale,
            aspect_ratio=aspect_ratio,
            enable_sync_mode=sync_mode,
        )
        handle = await run_blocking(
            lambda context: submit_task(request, context, force_rerun=force_rerun),
            watch=Watch(bridge.NodeProgress(unique_id)),
        )
        return (handle, handle.request_id)
