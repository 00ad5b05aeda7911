"""The pack's nodes in ComfyUI's V3 schema (``comfy_api.latest``): what ComfyUI 0.3.75+ registers.

Imported only by ``comfy_entrypoint`` inside ComfyUI, where ``comfy_api.latest`` is already loaded.
Each node is declared once, in the V1 form its class keeps (``INPUT_TYPES``, ``RETURN_TYPES``...):
that form needs no ComfyUI import, so the unit tests, the scripts and a ComfyUI without
``comfy_api.latest`` use it as it is. Here it is translated input by input into ``io`` inputs and
outputs, in the same order with the same names and options, so a workflow saved before the port
loads unchanged (tests/nodes/test_v3_schema.py compares ComfyUI's own V1 view of both).

The price badge (``io.PriceBadge``, ComfyUI 0.33.0+; 0.3.75 has none, so there the node has no
badge) prices a node with a ``MODEL`` by nodes/shared/pricing.py: adding a ``count`` widget to a node is
all it takes for its badge to follow it. The frontend draws price badges only on API nodes, so a
priced node is flagged ``is_api_node``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from comfy_api.latest import ComfyExtension, io

from ..wavespeed import PRICE_PER_IMAGE_USD
from . import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from .shared.pricing import multipliers_of, price_badge_expr
from .shared.task_value import TASK_TYPE

_NUMBER_KEYS = ("default", "min", "max", "step")
#: Socket types by V1 name (widget inputs are translated one by one in ``v3_input``).
_IO_TYPES: dict[str, Any] = {
    "IMAGE": io.Image,
    "STRING": io.String,
    "INT": io.Int,
    "FLOAT": io.Float,
    "BOOLEAN": io.Boolean,
    TASK_TYPE: io.Custom(TASK_TYPE),
}


def _price_badge(v1: type, input_names: list[str]) -> dict[str, Any]:
    """Schema arguments for the node's price badge; none for a free node or an older ComfyUI."""
    model = getattr(v1, "MODEL", None)
    if model is None or not hasattr(io, "PriceBadge"):
        return {}
    multipliers = multipliers_of(input_names)
    badge = io.PriceBadge(
        expr=price_badge_expr(PRICE_PER_IMAGE_USD[model], multipliers),
        depends_on=io.PriceBadgeDepends(widgets=multipliers),
    )
    return {"price_badge": badge, "is_api_node": True}


def v3_input(name: str, spec: tuple[Any, ...], optional: bool) -> Any:
    """One V1 input spec ``(type, options)`` as the equivalent ``io`` input (an option left out here
    fails tests/nodes/test_v3_schema.py, which compares every V1 option with ComfyUI's view of this one)."""
    kind, opts = spec[0], dict(spec[1]) if len(spec) > 1 else {}
    common: dict[str, Any] = {"optional": optional, "tooltip": opts.get("tooltip")}
    if isinstance(kind, (list, tuple)):
        return io.Combo.Input(name, options=list(kind), default=opts.get("default"), **common)
    if kind == "INT":
        return io.Int.Input(
            name,
            control_after_generate=opts.get("control_after_generate"),
            **{k: opts.get(k) for k in _NUMBER_KEYS},
            **common,
        )
    if kind == "FLOAT":
        return io.Float.Input(
            name,
            round=opts.get("round"),
            **{k: opts.get(k) for k in _NUMBER_KEYS},
            **common,
        )
    if kind == "BOOLEAN":
        return io.Boolean.Input(
            name,
            default=opts.get("default"),
            label_on=opts.get("label_on"),
            label_off=opts.get("label_off"),
            **common,
        )
    if kind == "STRING":
        return io.String.Input(
            name, multiline=opts.get("multiline", False), default=opts.get("default"), **common
        )
    return _IO_TYPES[kind].Input(name, **common)


def schema_for(node_id: str, v1: type) -> Any:
    """The ``io.Schema`` equivalent to the V1 declaration of ``v1``."""
    declared = v1.INPUT_TYPES()  # type: ignore[attr-defined]
    inputs = [
        v3_input(name, spec, optional=(section == "optional"))
        for section in ("required", "optional")
        for name, spec in declared.get(section, {}).items()
    ]
    returns = zip(v1.RETURN_TYPES, v1.RETURN_NAMES, v1.OUTPUT_TOOLTIPS, strict=True)  # type: ignore[attr-defined]
    outputs = [_IO_TYPES[kind].Output(display_name=name, tooltip=tip) for kind, name, tip in returns]
    return io.Schema(
        node_id=node_id,
        display_name=NODE_DISPLAY_NAME_MAPPINGS[node_id],
        category=v1.CATEGORY,  # type: ignore[attr-defined]
        description=v1.DESCRIPTION,  # type: ignore[attr-defined]
        inputs=inputs,
        outputs=outputs,
        hidden=[io.Hidden.unique_id],
        **_price_badge(v1, [i.id for i in inputs]),
    )


class WaveSpeedNode(io.ComfyNode):  # type: ignore[misc]  # comfy_api is untyped here
    """A V3 node whose declaration and work are those of its V1 class ``V1``."""

    NODE_ID: ClassVar[str] = ""
    V1: ClassVar[type]

    @classmethod
    def define_schema(cls) -> Any:
        return schema_for(cls.NODE_ID, cls.V1)

    @classmethod
    async def execute(cls, **kwargs: Any) -> Any:
        """The V1 entry point with the node's id (progress text, journal), as a NodeOutput."""
        run = getattr(cls.V1(), cls.V1.FUNCTION)  # type: ignore[attr-defined]
        result = await run(**{**kwargs, "unique_id": cls.hidden.unique_id})
        return io.NodeOutput(*result)


class FingerprintedNode(WaveSpeedNode):
    """For a V1 class with ``IS_CHANGED`` only: ComfyUI evaluates a fingerprint only when one is defined."""

    @classmethod
    def fingerprint_inputs(cls, **kwargs: Any) -> Any:
        """The V1 ``IS_CHANGED``: NaN (never equal) re-runs, e.g. seed -1 or force_rerun."""
        return cls.V1.IS_CHANGED(**kwargs)  # type: ignore[attr-defined]


def _v3_class(node_id: str, v1: type) -> type[WaveSpeedNode]:
    base = FingerprintedNode if hasattr(v1, "IS_CHANGED") else WaveSpeedNode
    return type(node_id, (base,), {"NODE_ID": node_id, "V1": v1, "__module__": __name__})


V3_NODES: list[type[WaveSpeedNode]] = [_v3_class(node_id, v1) for node_id, v1 in NODE_CLASS_MAPPINGS.items()]


class WaveSpeedExtension(ComfyExtension):  # type: ignore[misc]
    async def get_node_list(self) -> list[type[WaveSpeedNode]]:
        return list(V3_NODES)
