"""FLUX.1 Kontext [max] Batch as ComfyUI sees it; the work is nodes/batch.py's."""

from __future__ import annotations

from typing import Any

from comfy_api.latest import io

from .. import batch
from .common import price_text, row_inputs, run_work, schema


class FluxKontextMaxBatch(io.ComfyNode):  # type: ignore[misc]  # comfy_api is untyped
    @classmethod
    def define_schema(cls) -> Any:
        prompts, *rows = row_inputs("batch")  # the prompts, then seed, guidance and aspect ratio
        return schema(
            "FluxKontextMaxBatch",
            "FLUX.1 Kontext [max] Batch (WaveSpeed)",
            "Several prompts (one per line) x a number of variations as one IMAGE batch: every task is "
            "submitted within the account's limits, journaled and paid once "
            f"({price_text('t2i')}; the batch's total is shown first).",
            [
                prompts,
                io.Int.Input(
                    "variations",
                    display_name="images per prompt",
                    default=1,
                    min=1,
                    max=batch.MAX_TASKS,
                    tooltip="Images per prompt.",
                ),
                *rows,
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
                *row_inputs("batch", saved=False),
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
            kind=batch.FluxKontextMaxBatch.KIND,  # its price x prompts x variations is the badge
        )

    @classmethod
    def fingerprint_inputs(cls, **inputs: Any) -> Any:
        return batch.FluxKontextMaxBatch.fingerprint_inputs(**inputs)

    @classmethod
    async def execute(cls, **inputs: Any) -> Any:
        return await run_work(batch.FluxKontextMaxBatch().run, cls, inputs)
