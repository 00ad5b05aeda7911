"""FLUX.1 Kontext [max] text-to-image: submit a task and hand its handle to WaveSpeed Poll Result.

The work of the Generate node, without ComfyUI: nodes/v3/ declares the node and calls it."""

from __future__ import annotations

from typing import Any, Final

from ..wavespeed import KontextRequest, submit_task
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

    KIND: Final = "t2i"  # its rows of the table, and its model's price per image for the badge

    async def generate(
        self,
        prompt: str,
        seed: int,
        guidance_scale: float,
        aspect_ratio: str,
        sync_mode: bool,
        force_rerun: bool = False,
        unique_id: str | None = None,
        **appended: Any,
    ) -> tuple[Any, str]:
        """``appended``: the widgets of body parameters added to the table since (shown last)."""
        request = KontextRequest.from_widgets(
            self.KIND,
            prompt=prompt,
            seed=seed,
            guidance_scale=guidance_scale,
            aspect_ratio=aspect_ratio,
            sync_mode=sync_mode,
            **appended,
        )
        handle = await run_blocking(
            lambda context: submit_task(request, context, force_rerun=force_rerun),
            watch=Watch(bridge.NodeProgress(unique_id)),
        )
        return (handle, handle.request_id)
