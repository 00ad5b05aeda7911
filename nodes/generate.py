"""FLUX.1 Kontext [max] text-to-image: submit a task and hand its handle to WaveSpeed Poll Result."""

from __future__ import annotations

from typing import Any

from ..wavespeed import (
    ASPECT_RATIOS,
    DEFAULT_ASPECT_RATIO,
    GUIDANCE_DEFAULT,
    GUIDANCE_MAX,
    GUIDANCE_MIN,
    MODEL_TEXT_TO_IMAGE,
    PRICE_PER_IMAGE_USD,
    SEED_MAX,
    SEED_MIN,
    KontextRequest,
)
from .paid.submission import submit_task
from .shared.task_value import TASK_TYPE

CATEGORY = "WaveSpeed/FLUX Kontext"


def common_inputs() -> dict[str, Any]:
    """Widgets shared by every Kontext [max] submit node, in their saved order."""
    return {
        "seed": (
            "INT",
            {
                "default": 0,
                "min": SEED_MIN,
                "max": SEED_MAX,
                "control_after_generate": True,
                "tooltip": "Same seed + same inputs = same image, and the earlier result is reused with no "
                "new charge (for 7 days, even after a restart). -1 lets the API pick a random seed "
                "and always runs again.",
            },
        ),
        "guidance_scale": (
            "FLOAT",
            {
                "default": GUIDANCE_DEFAULT,
                "min": GUIDANCE_MIN,
                "max": GUIDANCE_MAX,
                "step": 0.1,
                "round": 0.01,
                "tooltip": "How strictly the image follows the prompt (1.0-20.0, default 3.5).",
            },
        ),
        "aspect_ratio": (
            list(ASPECT_RATIOS),
            {
                "default": DEFAULT_ASPECT_RATIO,
                "tooltip": "Shape of the output; 1:1 is 1024x1024, others keep about one megapixel.",
            },
        ),
        "sync_mode": (
            "BOOLEAN",
            {
                "default": False,
                "label_on": "sync",
                "label_off": "async",
                "tooltip": "Sync: the API holds the request until the image is ready (one call, no "
                "polling). Async (default): submit now, WaveSpeed Poll Result waits.",
            },
        ),
        "force_rerun": (
            "BOOLEAN",
            {
                "default": False,
                "tooltip": "Off (default): the same inputs with a fixed seed reuse the earlier result "
                "(no new charge). On: always submit a new, paid task.",
            },
        ),
    }


PROMPT_INPUT = (
    "STRING",
    {
        "multiline": True,
        "default": "",
        "tooltip": "What to generate. Kontext [max] follows long, specific prompts well.",
    },
)


class KontextSubmitNode:
    """What every Kontext submit node shares: its outputs (a task for Poll Result) and its cache rule."""

    CATEGORY = CATEGORY
    RETURN_TYPES = (TASK_TYPE, "STRING")
    RETURN_NAMES = ("task", "request_id")
    OUTPUT_TOOLTIPS = (
        "Connect to WaveSpeed Poll Result.",
        "The task's request id: keep it to fetch the result again later without paying twice.",
    )

    @classmethod
    def IS_CHANGED(cls, seed: int = 0, force_rerun: bool = False, **_: Any) -> Any:
        """Seed -1 or force_rerun means 'a new image every time': NaN never equals itself, so
        ComfyUI never reuses a cached result; otherwise the seed (inputs decide as usual)."""
        return float("nan") if seed == -1 or force_rerun else seed


class FluxKontextMaxGenerate(KontextSubmitNode):
    DESCRIPTION = (
        "Submit a FLUX.1 Kontext [max] text-to-image task to WaveSpeedAI "
        f"(${PRICE_PER_IMAGE_USD[MODEL_TEXT_TO_IMAGE]:.2f} per image). Connect 'task' to WaveSpeed Poll "
        "Result to get the image. The API key comes from WAVESPEED_API_KEY, never from the workflow."
    )
    FUNCTION = "generate"
    MODEL = MODEL_TEXT_TO_IMAGE  # its price per image is the node's price badge (nodes/v3.py)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {"prompt": PROMPT_INPUT, **common_inputs()},
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

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
        handle = await submit_task(request, unique_id, force_rerun=force_rerun)
        return (handle, handle.request_id)
