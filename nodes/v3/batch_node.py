"""FLUX.1 Kontext [max] Batch as ComfyUI sees it; the work is nodes/batch.py's."""

from __future__ import annotations

from typing import Any

from comfy_api.latest import io

from ...wavespeed import PRICE_PER_IMAGE_USD
from .. import batch
from .common import aspect_ratio_input, guidance_input, run_work, schema, seed_input


class FluxKontextMaxBatch(io.ComfyNode):  # type: ignore[misc]  # comfy_api is untyped
    @classmethod
    def define_schema(cls) -> Any:
        model = batch.FluxKontextMaxBatch.MODEL  # its price x prompts x variations is the badge
        return schema(
            "FluxKontextMaxBatch",
            "FLUX.1 Kontext [max] Batch (WaveSpeed)",
            "Several prompts (one per line) x a number of variations as one IMAGE batch: every task is "
            "submitted within the account's limits, journaled and paid once "
            f"(${PRICE_PER_IMAGE_USD[model]:.2f} per image; the batch's total is shown first).",
            [
                io.String.Input(
                    "prompts",
                    multiline=True,
                    default="",
                    tooltip="One prompt per line; blank lines are skipped.",
                ),
                io.Int.Input(
                    "variations",
                    display_name="images per prompt",
                    default=1,
                    min=1,
                    max=batch.MAX_TASKS,
                    tooltip="Images per prompt.",
                ),
                seed_input(
                    "Variation v uses seed + v (a fixed seed reuses earlier results, no new charge); -1 lets "
                    "the API pick every seed (always new, paid images)."
                ),
                guidance_input("How strictly the images follow the prompts (1.0-20.0, default 3.5)."),
                aspect_ratio_input("One shape for the whole batch."),
                io.Combo.Input(
                    "on_failure",
                    display_name="if some fail",
                    options=[batch.RETURN_SUCCEEDED, batch.FAIL],
                    default=batch.RETURN_SUCCEEDED,
                    tooltip="If some tasks fail: return the images that arrived and name the failures, or "
                    "stop with an error (paid images stay fetchable by id).",
                ),
                io.Int.Input(
                    "timeout_s",
                    display_name="give up after (s)",
                    default=1800,
                    min=10,
                    max=7200,
                    step=10,
                    tooltip="Give up waiting for a task after this many seconds (it keeps running; its id "
                    "fetches it later). A Bronze account makes 2 images a minute.",
                ),
            ],
            [
                io.Image.Output(
                    display_name="images",
                    tooltip="Every image that arrived, prompt by prompt, variation by variation.",
                ),
                io.String.Output(
                    display_name="image_urls", tooltip="Output URLs, one per line (they expire after 7 days)."
                ),
                io.String.Output(
                    display_name="request_ids",
                    tooltip="Request ids of the images, one per line (Poll Result fetches any of them again, "
                    "no charge).",
                ),
                io.String.Output(
                    display_name="failures",
                    tooltip="Failed tasks, one per line with id and reason (empty when all succeeded).",
                ),
            ],
            model=model,
        )

    @classmethod
    def fingerprint_inputs(cls, **inputs: Any) -> Any:
        return batch.FluxKontextMaxBatch.fingerprint_inputs(**inputs)

    @classmethod
    async def execute(cls, **inputs: Any) -> Any:
        return await run_work(batch.FluxKontextMaxBatch().run, cls, inputs)
