"""The request body as data: one row per body parameter the pack sends, and how it shows on a node.

A row says everything about one key of the JSON body of WaveSpeed's Kontext models (WAVESPEED_API.md
section 3): its type, default, range or options, how it is checked, how it goes into the body, which
model kinds take it, and its widget on each node kind that shows it. The request (kontext_request.py:
its check and its payload), the journal's identity (``params_hash``), the history match and the nodes'
inputs all read these rows, and no other module of the pack writes a body key: a new optional body
parameter is one row here, and its test.

Decisions, and why:

* Rows are in body order: a payload lists its keys as the rows do, so the bodies sent before the
  table existed are sent byte for byte as they were (tests/wavespeed/api/test_request_table.py).
* A value in ``left_out`` is not sent: seed -1 (the API picks a seed), no aspect ratio (the API keeps
  the input's shape). A row added later must leave its default out, so every payload and identity
  journaled before it stays the same and a re-queue still reuses a task paid before the upgrade.
* ``identity=False`` (sync mode): how we wait, not what we get. The journal's identity and the history
  match leave it out, so an identical re-queue in the other mode reuses the task.
* Widgets: saved workflows hold widget values by position. ``position`` is where they hold a row's
  widget among the node's row widgets; a row without one (every row added later) is shown after
  every input the node declares itself, so a workflow saved before it keeps its positions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

from ..core.errors import ValidationError
from .prompt_text import check_prompt

#: What a model does, and so which rows its body takes.
Kind = Literal["t2i", "edit", "multi"]
#: A node family that shows rows as widgets: a model kind's submit node, or the Batch node (t2i).
NodeKind = Literal["t2i", "edit", "multi", "batch"]
ALL_KINDS: frozenset[Kind] = frozenset({"t2i", "edit", "multi"})
#: The model kind a node kind submits to.
MODEL_KIND: Mapping[NodeKind, Kind] = MappingProxyType(
    {"t2i": "t2i", "edit": "edit", "multi": "multi", "batch": "t2i"}
)


@dataclass(frozen=True)
class Widget:
    """How a row shows on one node kind: its V3 input is built from this (nodes/v3/common.py)."""

    name: str  # the input's id: what saved workflows hold (not always the body key)
    tooltip: str
    label: str | None = None  # the plain-word label the frontend shows
    position: int | None = None  # where saved workflows hold it among the row widgets (None: after all)
    default: Any = None  # None: the row's default
    step: float | None = None
    round: float | None = None
    multiline: bool = False
    control_after_generate: bool = False
    toggle: tuple[str, str] | None = None  # a boolean's labels (on, off)
    left_out_choice: str | None = None  # a first choice meaning "leave it out of the body"; the default


@dataclass(frozen=True)
class Param:
    """One body parameter: what it is, how it is checked and sent, and where it shows."""

    key: str  # the body key
    value_type: type  # str, int, float, bool, or tuple (a list of strings in the body)
    default: Any
    widgets: Mapping[NodeKind, Widget] = field(default_factory=dict)
    kinds: frozenset[Kind] = ALL_KINDS  # the model kinds whose body takes it
    bounds: tuple[float, float] | None = None  # a number's range (a model may narrow it: models.py)
    options: tuple[str, ...] = ()  # a choice's values
    left_out: tuple[Any, ...] = ()  # values that leave the key out of the body
    identity: bool = True  # False: how we wait, not what we get
    hint: str = ""  # how to fix a bad whole number, for the refusal (default: "use <low>..<high>")
    check: Callable[[Any], None] | None = None  # the row's own check (the prompt's)
    references: bool = False  # it carries the reference image(s): checked by the request

    def widget_default(self, kind: NodeKind) -> Any:
        """What the widget shows on a new node: its left-out choice, its own default, or the row's."""
        widget = self.widgets[kind]
        if widget.left_out_choice is not None:
            return widget.left_out_choice
        return self.default if widget.default is None else widget.default

    def body_value(self, value: Any) -> Any:
        """The value as the body holds it: a float as a float (4 -> 4.0), a tuple as a list. Total: a
        value of another type is kept as it is, for ``check_value`` to refuse."""
        if self.value_type is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return list(value) if self.value_type is tuple and isinstance(value, (list, tuple)) else value

    def sent(self, value: Any) -> bool:
        """Whether the value goes into the body (a value of ``left_out`` does not; -1.0 is not -1)."""
        return not any(value is v or (type(value) is type(v) and value == v) for v in self.left_out)

    def check_value(self, value: Any, bounds: tuple[float, float] | None, where: str = "") -> None:
        """Refuse a bad value in one line naming the key and its fix (``where``: the model, when it
        narrows the range). Reference images are the request's to check (they need the model)."""
        if self.check is not None:
            self.check(value)
        elif self.value_type is bool:
            if not isinstance(value, bool):
                raise ValidationError(f"{self.key} must be true or false.")
        elif self.value_type is int:
            _check_whole(self, value, bounds)
        elif self.value_type is float:
            _check_number(self, value, bounds, where)
        elif self.options and self.sent(value) and value not in self.options:
            raise ValidationError(
                f"{self.key} {value!r} is not supported: use one of {', '.join(self.options)}."
            )
        elif (
            self.value_type is str and not self.references and self.sent(value) and not isinstance(value, str)
        ):
            raise ValidationError(f"{self.key} must be text, got {type(value).__name__}.")


def _check_whole(param: Param, value: Any, bounds: tuple[float, float] | None) -> None:
    hint = param.hint or (f"use {bounds[0]}..{bounds[1]}" if bounds is not None else "use a whole number")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{param.key} must be a whole number, got {type(value).__name__}: {hint}.")
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        raise ValidationError(f"{param.key} {value!r} is out of range: {hint}.")


def _check_number(param: Param, value: Any, bounds: tuple[float, float] | None, where: str) -> None:
    low, high = bounds if bounds is not None else (-math.inf, math.inf)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(f"{param.key} {value!r} is not a number: use {low}..{high}.")
    if not low <= value <= high:
        raise ValidationError(
            f"{param.key} {value} is out of range{where}: use {low}..{high} (default {param.default})."
        )


SEED_MAX = 2_147_483_647
ASPECT_RATIOS = ("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21")
_SUBMIT: tuple[NodeKind, ...] = ("t2i", "edit", "multi")


def _on(kinds: tuple[NodeKind, ...], widget: Widget, **variants: Widget) -> dict[NodeKind, Widget]:
    """One widget on several node kinds, with each kind's own variant where it differs."""
    return {kind: variants.get(kind, widget) for kind in kinds}


_PROMPT = Widget(
    "prompt",
    "What to generate. Kontext [max] follows long, specific prompts well.",
    position=0,
    default="",
    multiline=True,
)
PROMPT = Param(
    "prompt",
    str,
    None,
    check=check_prompt,
    widgets=_on(
        (*_SUBMIT, "batch"),
        _PROMPT,
        edit=replace(
            _PROMPT,
            tooltip="What to change, e.g. 'make it night, keep the house unchanged'. Say what must stay the "
            "same as well as what to change.",
        ),
        multi=replace(
            _PROMPT,
            tooltip="How to combine the references, e.g. 'the person from image 1 wearing the jacket from "
            "image 2'. References are numbered in the order they are sent.",
        ),
        batch=replace(_PROMPT, name="prompts", tooltip="One prompt per line; blank lines are skipped."),
    ),
)

_GUIDANCE = Widget(
    "guidance_scale",
    "How strictly the image follows the prompt (1.0-20.0, default 3.5).",
    label="guidance",
    position=2,
    step=0.1,
    round=0.01,
)
GUIDANCE_SCALE = Param(
    "guidance_scale",
    float,
    3.5,
    bounds=(1.0, 20.0),
    widgets=_on(
        (*_SUBMIT, "batch"),
        _GUIDANCE,
        batch=replace(
            _GUIDANCE,
            tooltip="How strictly the images follow the prompts (1.0-20.0, default 3.5).",
            round=None,
        ),
    ),
)

_SEED = Widget(
    "seed",
    "Same seed + same inputs = same image, and the earlier result is reused with no new charge (for 7 "
    "days, even after a restart). -1 lets the API pick a random seed and always runs again.",
    position=1,
    default=0,
    control_after_generate=True,
)
SEED = Param(
    "seed",
    int,
    -1,
    bounds=(-1, SEED_MAX),
    left_out=(-1,),
    hint=f"use -1 (random) or 0..{SEED_MAX}",
    widgets=_on(
        (*_SUBMIT, "batch"),
        _SEED,
        batch=replace(
            _SEED,
            tooltip="Variation v uses seed + v (a fixed seed reuses earlier results, no new charge); -1 lets "
            "the API pick every seed (always new, paid images).",
        ),
    ),
)

_MATCH = "match input"
_RATIO = Widget(
    "aspect_ratio",
    "Shape of the output; 1:1 is 1024x1024, others keep about one megapixel.",
    label="aspect ratio",
    position=3,
)
ASPECT_RATIO = Param(
    "aspect_ratio",
    str,
    "1:1",
    options=ASPECT_RATIOS,
    left_out=(None,),
    widgets=_on(
        (*_SUBMIT, "batch"),
        _RATIO,
        edit=replace(
            _RATIO,
            tooltip="Shape of the output. 'match input' (default) leaves it to the API, which keeps the "
            "input image's shape; the others force a ratio at about one megapixel.",
            left_out_choice=_MATCH,
        ),
        multi=replace(
            _RATIO,
            tooltip="Shape of the output. 'match input' (default) leaves it out of the request so the API "
            "decides from the references; the others force a ratio at about one megapixel.",
            left_out_choice=_MATCH,
        ),
        batch=replace(_RATIO, tooltip="One shape for the whole batch."),
    ),
)

IMAGE = Param("image", str, None, kinds=frozenset({"edit"}), references=True)
IMAGES = Param("images", tuple, (), kinds=frozenset({"multi"}), references=True)

SYNC_MODE = Param(
    "enable_sync_mode",
    bool,
    False,
    identity=False,
    widgets=_on(
        _SUBMIT,
        Widget(
            "sync_mode",
            "Sync: the API holds the request until the image is ready (one call, no polling). Async "
            "(default): submit now, WaveSpeed Poll Result waits.",
            label="wait in one request",
            position=4,
            toggle=("sync", "async"),
        ),
    ),
)

#: Every body parameter the pack sends, in body order.
PARAMS: tuple[Param, ...] = (PROMPT, GUIDANCE_SCALE, SEED, ASPECT_RATIO, IMAGE, IMAGES, SYNC_MODE)


def params_of(kind: Kind) -> tuple[Param, ...]:
    """The rows a model kind's body takes, in body order."""
    return tuple(p for p in PARAMS if kind in p.kinds)


def node_params(kind: NodeKind) -> tuple[Param, ...]:
    """The rows a node kind shows, in their saved widget order: those saved workflows hold (by
    ``position``), then the rows added since, in table order (shown after the node's own inputs)."""
    shown = [p for p in PARAMS if kind in p.widgets]
    placed = [p for p in shown if p.widgets[kind].position is not None]
    placed.sort(key=lambda p: p.widgets[kind].position or 0)
    return (*placed, *(p for p in shown if p.widgets[kind].position is None))


def body_of(params: Sequence[Param], values: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body of request ``values`` (by body key) for these rows, in their order; a value left
    unset is its row's default, a left-out value (seed -1: the server picks) is not sent. Total: it
    never raises, so a request makes its body and checks it in one pass (kontext_request.py)."""
    body: dict[str, Any] = {}
    for param in params:
        value = values.get(param.key, param.default)
        if param.sent(value):
            body[param.key] = param.body_value(value)
    return body


def wait_keys() -> frozenset[str]:
    """The keys that say how we wait, not what we get: out of the journal's identity and the history match."""
    return frozenset(p.key for p in PARAMS if not p.identity)
