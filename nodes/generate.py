"""FLUX.1 Kontext Generate: text to image, one paid task whose handle goes to WaveSpeed Poll Result.

The request is built from the widgets through the table (wavespeed/api/body_params.py) for the chosen
model family, and submitted by the paid path (``submit_task``) in one worker call."""

from __future__ import annotations

from functools import partial
from typing import Any, Final

from comfy_api.latest import io

from ..wavespeed import KontextRequest, submit_task
from .shared import comfy_bridge as bridge
from .shared.runtime import Watch, run_blocking
from .shared.widgets import (
    DEFAULT_MODEL,
    PaidNode,
    family_of,
    kontext_inputs,
    last_inputs,
    price_text,
    schema,
    task_outputs,
)


class FluxKontextMaxGenerate(PaidNode):
    KIND: Final = "t2i"  # its rows of the table, and its model's price per image for the badge

    @classmethod
    def define_schema(cls) -> Any:
        return schema(
            "FluxKontextMaxGenerate",
            "FLUX.1 Kontext [max] Generate (WaveSpeed)",
            f"Submit a FLUX.1 Kontext [max] text-to-image task to WaveSpeedAI ({price_text('t2i')}). "
            "Connect 'task' to WaveSpeed Poll Result to get the image. The API key comes from "
            "WAVESPEED_API_KEY, never from the workflow.",
            [*kontext_inputs(cls.KIND), *last_inputs(cls.KIND)],
            task_outputs(),
            kind=cls.KIND,
        )

    @classmethod
    async def execute(
        cls,
        prompt: str,
        seed: int,
        guidance_scale: float,
        aspect_ratio: str,
        sync_mode: bool,
        force_rerun: bool = False,
        model: str = DEFAULT_MODEL,
        **appended: Any,
    ) -> Any:
        """``appended``: the widgets of body parameters added to the table since (shown last)."""
        request = KontextRequest.from_widgets(
            cls.KIND,
            family_of(model),
            prompt=prompt,
            seed=seed,
            guidance_scale=guidance_scale,
            aspect_ratio=aspect_ratio,
            sync_mode=sync_mode,
            **appended,
        ).validate()  # a bad value is one line before the worker starts, as on Edit and Batch
        handle = await run_blocking(
            partial(submit_task, request, force_rerun=force_rerun),
            watch=Watch(bridge.NodeProgress(cls.hidden.unique_id)),
        )
        return io.NodeOutput(handle, handle.request_id)
