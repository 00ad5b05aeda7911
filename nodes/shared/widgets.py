"""What the pack's nodes declare alike: category, the task socket, the Kontext widgets, the model
choice, the cache rule of a submit node, the price rules.

Input names, their order and their options are what saved workflows hold (widget values by position),
so a change here is a change to every saved workflow: tests/nodes/test_v3_schema.py pins them as
ComfyUI's own V1 view shows them. Labels are ``display_name``: the frontend shows them, the saved
name stays the input's id. A body parameter's widget (prompt, seed, guidance, aspect ratio, sync mode)
is built from its row in the table (wavespeed/api/body_params.py: ``param_input``); a row added to
the table later shows after every input a node declares itself (``row_inputs(kind, saved=False)``).

No node is a comfy.org partner node (``is_api_node``): the frontend would ask for a comfy.org sign-in
before Run and ComfyUI would hand comfy.org credentials to our ``execute``. So the frontend's own
``price_badge`` (drawn on partner nodes only) is not used either: a paid node's price rule (each
family's price for its model, from the table; pricing.py) goes into PRICE_RULES, which
price_route.py serves to the pack's web extension; adding a ``count`` widget to a node is all it
takes for its badge to follow it. The ``model`` widget (``models.FAMILY_INPUT``) is a paid node's last
optional input, [max] by default, so a workflow saved before it loads and runs as [max].

Imports ``comfy_api.latest``: only the node modules import this, and ComfyUI has imported it first.
"""

from __future__ import annotations

from typing import Any, Final

from comfy_api.latest import io

from ...wavespeed import InvalidRequestError, body_params, models
from .pricing import price_rule

CATEGORY = "WaveSpeed/FLUX Kontext"
#: The socket a submit node hands to WaveSpeed Poll Result (a TaskHandle); saved workflows name it.
Task = io.Custom("WAVESPEED_TASK")
#: What the node library's search finds every node of the pack by (ComfyUI 0.33.0's ``search_aliases``).
SEARCH_ALIASES = ["wavespeed", "kontext", "flux kontext max"]
#: Each paid node's price rule by node id, filled as the node declares its schema (ComfyUI declares
#: every node when it loads the pack, before the web extension can ask for them).
PRICE_RULES: dict[str, dict[str, Any]] = {}


def param_input(param: body_params.Param, kind: body_params.NodeKind, optional: bool = False) -> Any:
    """A body parameter's widget on a node kind, built from its row (wavespeed/api/body_params.py)."""
    widget = param.widgets[kind]
    common = {
        "display_name": widget.label,
        "tooltip": widget.tooltip,
        "default": param.widget_default(kind),
        "optional": optional,
    }
    if param.value_type is bool:
        on, off = widget.toggle or (None, None)
        return io.Boolean.Input(widget.name, label_on=on, label_off=off, **common)
    if param.value_type in (int, float):
        low, high = param.bounds or (None, None)
        if param.value_type is int:
            control = widget.control_after_generate or None
            return io.Int.Input(
                widget.name, min=low, max=high, step=widget.step, control_after_generate=control, **common
            )
        return io.Float.Input(widget.name, min=low, max=high, step=widget.step, round=widget.round, **common)
    if param.options:
        first = [widget.left_out_choice] if widget.left_out_choice is not None else []
        return io.Combo.Input(widget.name, options=[*first, *param.options], **common)
    return io.String.Input(widget.name, multiline=widget.multiline, **common)


def row_inputs(kind: body_params.NodeKind, saved: bool = True) -> list[Any]:
    """The node kind's body-parameter widgets: those saved workflows hold (``saved``), in their
    order, or the rows added to the table since, which every node shows after its own inputs: as
    optional inputs, since the frontend lays out a node's required widgets before its optional ones."""
    rows = body_params.node_params(kind)
    placed = [p for p in rows if (p.widgets[kind].position is not None) == saved]
    return [param_input(p, kind, optional=not saved) for p in placed]


def kontext_inputs(kind: body_params.NodeKind) -> list[Any]:
    """The widgets every Kontext submit node starts with, in their saved order."""
    return [
        *row_inputs(kind),
        io.Boolean.Input(
            "force_rerun",
            display_name="always a new image",
            default=False,
            tooltip="Off (default): the same inputs with a fixed seed reuse the earlier result (no new "
            "charge). On: always submit a new, paid task.",
        ),
    ]


def last_inputs(kind: body_params.NodeKind) -> list[Any]:
    """What a paid node shows after its own inputs: the model choice, then the rows added to the
    table since (saved workflows hold values by position, so both only ever come last)."""
    return [model_input(kind), *row_inputs(kind, saved=False)]


#: The ``model`` widget's default: [max], so a workflow saved before the choice existed runs as it did.
DEFAULT_MODEL: Final = models.FAMILIES[models.DEFAULT_FAMILY]


def model_input(kind: body_params.NodeKind) -> Any:
    """The model choice of a paid node: the label of each family with a model of its kind (the
    table's rows), [max] the default."""
    prices = models.family_prices(body_params.MODEL_KIND[kind])
    return io.Combo.Input(
        models.FAMILY_INPUT,
        display_name="model",
        options=list(prices),
        default=DEFAULT_MODEL,
        optional=True,
        tooltip="Which FLUX.1 Kontext model does the work: "
        + ", ".join(f"{label} ${price:.2f} per image" for label, price in prices.items())
        + ". The price badge follows it.",
    )


def family_of(label: str) -> str:
    """The family a ``model`` widget value names, or one line saying which ones there are."""
    for family, name in models.FAMILIES.items():
        if name == label:
            return family
    raise InvalidRequestError(f"model {label!r} is not one of: {', '.join(models.FAMILIES.values())}.")


class PaidNode(io.ComfyNode):  # type: ignore[misc]  # comfy_api is untyped
    """What every paid node shares: its cache rule (ComfyUI's ``fingerprint_inputs``)."""

    @classmethod
    def fingerprint_inputs(cls, seed: int = 0, force_rerun: bool = False, **_: Any) -> Any:
        """Seed -1 or force_rerun means 'a new image every time': NaN never equals itself, so ComfyUI
        never reuses a cached result; otherwise the seed (the other inputs decide as usual)."""
        return float("nan") if seed == -1 or force_rerun else seed


def price_text(kind: body_params.Kind) -> str:
    """The default model's price, as node descriptions state it."""
    return f"${models.model_for(kind).price_usd:.2f} per image"


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
    kind: body_params.NodeKind | None = None,
    output_node: bool = False,
) -> Any:
    """The node's ``io.Schema``: the pack's category and search aliases, the node id as its hidden
    input (an ``output_node`` also gets ComfyUI's prompt and PNG info); for a paid node (``kind``)
    its price rule (each family's price for the kind's model) goes into PRICE_RULES."""
    if kind is not None:
        prices = models.family_prices(body_params.MODEL_KIND[kind])
        PRICE_RULES[node_id] = price_rule(prices, [i.id for i in inputs])
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
