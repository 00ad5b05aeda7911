"""What the pack's V3 declarations share: category, the task socket, the Kontext widgets, the price rules.

Input names, their order and their options are what saved workflows hold (widget values by position),
so a change here is a change to every saved workflow: tests/nodes/test_v3_schema.py pins them as
ComfyUI's own V1 view shows them. Labels are ``display_name``: the frontend shows them, the saved
name stays the input's id.

No node is a comfy.org partner node (``is_api_node``): the frontend would ask for a comfy.org sign-in
before Run and ComfyUI would hand comfy.org credentials to our ``execute``. So the frontend's own
``price_badge`` (drawn on partner nodes only) is not used either: a paid node's price rule (its model's
price, nodes/shared/pricing.py) goes into PRICE_RULES, which nodes/v3/price_route.py serves to the
pack's web extension; adding a ``count`` widget to a node is all it takes for its badge to follow it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from comfy_api.latest import io

from ...wavespeed import (
    ASPECT_RATIOS,
    DEFAULT_ASPECT_RATIO,
    GUIDANCE_DEFAULT,
    GUIDANCE_MAX,
    GUIDANCE_MIN,
    PRICE_PER_IMAGE_USD,
    SEED_MAX,
    SEED_MIN,
)
from ..shared.pricing import price_rule

CATEGORY = "WaveSpeed/FLUX Kontext"
#: The socket a submit node hands to WaveSpeed Poll Result (a TaskHandle); saved workflows name it.
Task = io.Custom("WAVESPEED_TASK")
#: What the node library's search finds every node of the pack by (ComfyUI 0.33.0's ``search_aliases``).
SEARCH_ALIASES = ["wavespeed", "kontext", "flux kontext max"]
#: Each paid node's price rule by node id, filled as the node declares its schema (ComfyUI declares
#: every node when it loads the pack, before the web extension can ask for them).
PRICE_RULES: dict[str, dict[str, Any]] = {}


def seed_input(tooltip: str) -> Any:
    return io.Int.Input(
        "seed", default=0, min=SEED_MIN, max=SEED_MAX, control_after_generate=True, tooltip=tooltip
    )


def guidance_input(tooltip: str, round: float | None = None) -> Any:
    return io.Float.Input(
        "guidance_scale",
        display_name="guidance",
        default=GUIDANCE_DEFAULT,
        min=GUIDANCE_MIN,
        max=GUIDANCE_MAX,
        step=0.1,
        round=round,
        tooltip=tooltip,
    )


def aspect_ratio_input(tooltip: str, first: tuple[str, ...] = ()) -> Any:
    """The API's ratios, after ``first`` (e.g. "match input"), which is then the default."""
    options = [*first, *ASPECT_RATIOS]
    return io.Combo.Input(
        "aspect_ratio",
        display_name="aspect ratio",
        options=options,
        default=options[0] if first else DEFAULT_ASPECT_RATIO,
        tooltip=tooltip,
    )


def kontext_inputs(prompt_tooltip: str, aspect_ratio: Any) -> list[Any]:
    """The widgets of every Kontext [max] submit node, in their saved order."""
    return [
        io.String.Input("prompt", multiline=True, default="", tooltip=prompt_tooltip),
        seed_input(
            "Same seed + same inputs = same image, and the earlier result is reused with no new charge "
            "(for 7 days, even after a restart). -1 lets the API pick a random seed and always runs again."
        ),
        guidance_input("How strictly the image follows the prompt (1.0-20.0, default 3.5).", round=0.01),
        aspect_ratio,
        io.Boolean.Input(
            "sync_mode",
            display_name="wait in one request",
            default=False,
            label_on="sync",
            label_off="async",
            tooltip="Sync: the API holds the request until the image is ready (one call, no polling). "
            "Async (default): submit now, WaveSpeed Poll Result waits.",
        ),
        io.Boolean.Input(
            "force_rerun",
            display_name="always a new image",
            default=False,
            tooltip="Off (default): the same inputs with a fixed seed reuse the earlier result (no new "
            "charge). On: always submit a new, paid task.",
        ),
    ]


def task_outputs() -> list[Any]:
    """A submit node's outputs: the task for Poll Result and its request id."""
    return [
        Task.Output(display_name="task", tooltip="Connect to WaveSpeed Poll Result."),
        io.String.Output(
            display_name="request_id",
            tooltip="The task's request id: keep it to fetch the result again later without paying twice.",
        ),
    ]


def schema(
    node_id: str,
    display_name: str,
    description: str,
    inputs: list[Any],
    outputs: list[Any],
    model: str | None = None,
    output_node: bool = False,
) -> Any:
    """The node's ``io.Schema``: the pack's category and search aliases, the node id as its hidden
    input (an ``output_node`` also gets ComfyUI's prompt and PNG info); for a paid node (``model``)
    its price rule goes into PRICE_RULES."""
    if model is not None:
        PRICE_RULES[node_id] = price_rule(PRICE_PER_IMAGE_USD[model], [i.id for i in inputs])
    aliases = {"search_aliases": SEARCH_ALIASES} if "search_aliases" in _SCHEMA_FIELDS else {}
    return io.Schema(
        node_id=node_id,
        display_name=display_name,
        category=CATEGORY,
        description=description,
        inputs=inputs,
        outputs=outputs,
        hidden=[io.Hidden.unique_id],
        is_output_node=output_node,
        **aliases,  # 0.3.75's io.Schema has no search_aliases (its frontend searches names only)
    )


_SCHEMA_FIELDS = set(getattr(io.Schema, "__dataclass_fields__", {}))


async def run_work(work: Callable[..., Awaitable[tuple[Any, ...]]], node: Any, inputs: dict[str, Any]) -> Any:
    """What every node's ``execute`` does: hand ComfyUI's inputs and the node id to the plain class
    doing the work (nodes/*.py), and its outputs back as an ``io.NodeOutput``."""
    return io.NodeOutput(*await work(**inputs, unique_id=node.hidden.unique_id))
