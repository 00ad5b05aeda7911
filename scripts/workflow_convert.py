"""UI-format workflow (what the frontend saves) -> API prompt (what POST /prompt takes), strictly.

Why: the shipped templates are saved in the frontend's UI format; a test that converts them the way
the frontend does, against the live /object_info, catches a stale widget order or a changed node
definition before a user does. Pure functions: no server, no network.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

#: Node types that exist only in the frontend; they never reach the API prompt.
FRONTEND_ONLY_NODES = frozenset({"Note", "MarkdownNote", "Reroute", "PrimitiveNode"})
#: Input types the frontend renders as widgets (a list type is a COMBO too).
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
#: Values of the frontend's "control after generate" widget.
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})
#: Combo options that make the frontend append an upload button widget (its value is serialized).
UPLOAD_FLAGS = ("image_upload", "video_upload", "animated_image_upload")
MODE_MUTED = 2
MODE_BYPASS = 4
#: web/saved_batch.js, mirrored: a Batch saved with the removed second seed control ("seed_mode", right
#: after the seed's control_after_generate value) loads with the same values, "random" as seed -1.
BATCH = "FluxKontextMaxBatch"
_SEED, _SEED_MODE, _OLD_BATCH_LENGTH = 2, 4, 9
_SEED_MODES = ("increment", "random")


@dataclass
class _Widget:
    name: str
    kind: str  # INT FLOAT STRING BOOLEAN COMBO
    options: dict[str, Any]
    choices: list[Any] | None
    extra: int  # serialized helper widgets after it (control_after_generate, combo filter list)


def _input_specs(info: dict[str, Any]) -> list[tuple[str, Any, dict[str, Any], bool]]:
    """Declared inputs in the frontend's widget order: input_order required, optional, then the rest."""
    inputs = info.get("input") or {}
    req: dict[str, Any] = inputs.get("required") or {}
    opt: dict[str, Any] = inputs.get("optional") or {}
    order = info.get("input_order") or {}
    names = [n for n in order.get("required", []) if n in req]
    names += [n for n in order.get("optional", []) if n in opt and n not in names]
    names += [n for n in list(req) + list(opt) if n not in names]
    out = []
    for name in names:
        spec = req[name] if name in req else opt[name]
        spec = spec if isinstance(spec, (list, tuple)) else [spec]
        opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
        out.append((name, spec[0], opts, name in req))
    return out


def _widget_for(name: str, typ: Any, opts: dict[str, Any]) -> _Widget | None:
    """The widget the frontend makes for one input, or None if it is a link-only input."""
    if opts.get("forceInput"):
        return None
    choices: list[Any] | None
    if isinstance(typ, (list, tuple)):
        kind, choices = "COMBO", list(typ)
    elif typ in WIDGET_TYPES:
        kind = typ
        choices = list(opts.get("options") or []) if typ == "COMBO" else None
    else:
        return None
    extra = 0
    if kind == "INT":
        # frontend: `spec.control_after_generate ?? ["seed", "noise_seed"].includes(name)`
        cag = opts.get("control_after_generate")
        extra = 1 if (cag if cag is not None else name in ("seed", "noise_seed")) else 0
    elif kind == "COMBO" and opts.get("control_after_generate"):
        extra = 2  # combo control adds the control widget and a filter-list text widget
    return _Widget(name, kind, opts, choices, extra)


def _check_value(where: str, w: _Widget, value: Any, check_combo_values: bool) -> Any:
    """Validate one widget value like the frontend/server would, so a stale widget order fails loudly."""
    if w.kind == "INT":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: INT widget got {value!r} (stale widget order?)")
    elif w.kind == "FLOAT":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: FLOAT widget got {value!r} (stale widget order?)")
    elif w.kind == "BOOLEAN":
        if not isinstance(value, bool):
            raise ValueError(f"{where}: BOOLEAN widget got {value!r} (stale widget order?)")
    elif w.kind == "STRING":
        if not isinstance(value, str):
            raise ValueError(f"{where}: STRING widget got {value!r} (stale widget order?)")
    elif w.kind == "COMBO" and check_combo_values and w.choices is not None and value not in w.choices:
        raise ValueError(f"{where}: {value!r} is not one of the COMBO options {w.choices!r}")
    if w.kind in ("INT", "FLOAT"):
        lo, hi = w.options.get("min"), w.options.get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ValueError(f"{where}: {value!r} is outside [{lo}, {hi}]")
    return value


def upgrade_batch_values(values: list[Any]) -> list[Any]:
    """A Batch node's saved values in today's layout (what web/saved_batch.js does in the browser)."""
    if len(values) != _OLD_BATCH_LENGTH or values[_SEED_MODE] not in _SEED_MODES:
        return values
    upgraded = [v for i, v in enumerate(values) if i != _SEED_MODE]
    if values[_SEED_MODE] == "random":
        upgraded[_SEED] = -1
    return upgraded


def _with_new_widgets(
    values: list[Any], widgets: list[tuple[str, Any, dict[str, Any], Any, bool]]
) -> list[Any]:
    """The values with a default for each optional widget after the last saved one, as the frontend
    keeps a widget's default when a workflow saved before that widget existed has no value for it."""
    filled, pos = list(values), 0
    for _name, _typ, _opts, w, required in widgets:
        if w is None:
            continue
        if pos >= len(values):
            if required or w.extra:
                break  # not a widget added since: the count check names it
            filled.append(w.options.get("default", (w.choices or [None])[0]))
        pos += 1 + w.extra
    return filled


def _links_table(workflow: dict[str, Any]) -> dict[int, tuple[int, int, int, int, Any]]:
    """link id -> (origin node, origin slot, target node, target slot, type); list or object form."""
    table: dict[int, tuple[int, int, int, int, Any]] = {}
    for link in workflow.get("links") or []:
        if isinstance(link, dict):
            lid = link["id"]
            table[int(lid)] = (
                link["origin_id"],
                int(link["origin_slot"]),
                link["target_id"],
                int(link["target_slot"]),
                link.get("type"),
            )
        else:
            lid, a, a_slot, b, b_slot, typ = link[:6]
            table[int(lid)] = (a, int(a_slot), b, int(b_slot), typ)
    return table


def ui_to_api(
    workflow_ui: dict[str, Any], object_info: dict[str, Any], *, check_combo_values: bool = True
) -> dict[str, Any]:
    """Convert a UI-format workflow (what the frontend saves) to the API prompt format, strictly.

    Mirrors the frontend (1.32.x of 0.3.75, 1.49.x of 0.33.0): widgets_values holds one entry per
    widget in declared input order (input_order), including widgets whose input is linked, plus the
    serialized helper widgets (INT control_after_generate, or by default for `seed`/`noise_seed`;
    COMBO control + filter list; the upload button of image/video upload combos, last). Muted (2) and bypassed (4) nodes are left
    out (bypass passes a same-typed input through, like the frontend); Note/MarkdownNote are dropped,
    Reroute is followed, PrimitiveNode values are inlined. Raises ValueError naming the node and input
    when the widget count, a COMBO value or a value type does not match /object_info.
    """
    if not isinstance(workflow_ui, dict) or "nodes" not in workflow_ui:
        raise ValueError("not a UI-format workflow (no 'nodes'); API-format prompts need no conversion")
    subgraph_ids = {sg.get("id") for sg in ((workflow_ui.get("definitions") or {}).get("subgraphs") or [])}
    nodes: dict[Any, dict[str, Any]] = {}
    for n in workflow_ui["nodes"]:
        nodes[n["id"]] = n
        nodes[str(n["id"])] = n
    links = _links_table(workflow_ui)

    def label(node: dict[str, Any]) -> str:
        title = node.get("title")
        return f"node {node['id']} ({node['type']}{', ' + repr(title) if title else ''})"

    def link_of(node: dict[str, Any], input_name: str) -> int | None:
        for slot in node.get("inputs") or []:
            if slot.get("name") == input_name or (slot.get("widget") or {}).get("name") == input_name:
                return None if slot.get("link") is None else int(slot["link"])
        return None

    def resolve(link_id: int, want_type: Any, where: str) -> tuple[str, Any] | None:
        """Follow a link through Reroute / bypassed nodes: ("link", [id, slot]) or ("value", v)."""
        for _ in range(1000):
            if link_id not in links:
                raise ValueError(f"{where}: link {link_id} is missing from the workflow's links")
            origin, slot, _t, _ts, _typ = links[link_id]
            src = nodes.get(origin)
            if src is None:
                raise ValueError(f"{where}: link {link_id} comes from a missing node {origin}")
            mode = src.get("mode", 0)
            if src["type"] == "Reroute":
                nxt = (src.get("inputs") or [{}])[0].get("link")
                if nxt is None:
                    return None
                link_id = int(nxt)
                continue
            if src["type"] == "PrimitiveNode":
                values = src.get("widgets_values") or []
                if not values:
                    raise ValueError(f"{where}: {label(src)} has no value")
                return ("value", values[0])
            if mode == MODE_MUTED:
                return None
            if mode == MODE_BYPASS:
                ins = src.get("inputs") or []
                order = ([slot] if slot < len(ins) else []) + list(range(len(ins)))
                nxt = None
                for i in order:
                    if ins[i].get("type") == want_type:
                        nxt = ins[i].get("link")
                        break
                if nxt is None:
                    return None
                link_id = int(nxt)
                continue
            return ("link", [str(src["id"]), slot])
        raise ValueError(f"{where}: link cycle through Reroute/bypassed nodes")

    prompt: dict[str, Any] = {}
    for node in workflow_ui["nodes"]:
        ntype, mode = node.get("type"), node.get("mode", 0)
        if ntype in FRONTEND_ONLY_NODES or mode in (MODE_MUTED, MODE_BYPASS):
            continue
        if ntype in subgraph_ids:
            raise ValueError(f"{label(node)}: subgraphs are not supported by ui_to_api")
        info = object_info.get(ntype)
        if info is None:
            raise ValueError(f"{label(node)}: node type {ntype!r} is not in /object_info (pack not loaded?)")
        values = node.get("widgets_values")
        if values is None:
            values = []
        if not isinstance(values, list):
            raise ValueError(f"{label(node)}: widgets_values is a {type(values).__name__}, expected a list")

        specs = _input_specs(info)
        declared = {name for name, *_ in specs}
        for slot in node.get("inputs") or []:
            if slot.get("link") is not None and slot.get("name") not in declared:
                raise ValueError(f"{label(node)}: link into unknown input {slot.get('name')!r}")
        if ntype == BATCH:
            values = upgrade_batch_values(values)
        widgets = [(name, typ, opts, _widget_for(name, typ, opts), req) for name, typ, opts, req in specs]
        values = _with_new_widgets(values, widgets)
        # the frontend's UploadImage extension adds one upload button for the first required upload combo
        has_upload = any(
            required
            and (isinstance(typ, (list, tuple)) or typ == "COMBO")
            and any(opts.get(f) for f in UPLOAD_FLAGS)
            for _, typ, opts, required in specs
        )
        expected = sum(1 + w.extra for *_, w, _req in widgets if w is not None) + int(has_upload)
        if len(values) != expected:
            names = [f"{n}(+{w.extra})" if w.extra else n for n, _, _, w, _req in widgets if w is not None]
            raise ValueError(
                f"{label(node)}: {len(values)} widgets_values but /object_info implies {expected} "
                f"for widgets {names} (stale widget order or a changed node definition?)"
            )

        inputs: dict[str, Any] = {}
        pos = 0
        for name, typ, _opts, w, _req in widgets:
            where = f"{label(node)} input {name!r}"
            want_type = "COMBO" if isinstance(typ, (list, tuple)) else typ
            link_id = link_of(node, name)
            if w is not None:
                value = values[pos]
                for ctl in values[pos + 1 : pos + 1 + w.extra][:1]:
                    ok = CONTROL_VALUES | ({"increment-wrap"} if w.kind == "COMBO" else set())
                    if ctl not in ok:
                        raise ValueError(
                            f"{where}: control_after_generate value {ctl!r} is not in {sorted(ok)}"
                        )
                pos += 1 + w.extra
                if link_id is None:
                    inputs[name] = _check_value(where, w, value, check_combo_values)
                    continue
            if link_id is None:
                continue
            got = resolve(link_id, want_type, where)
            if got is None:
                continue
            kind, payload = got
            if kind == "value":
                if w is None:
                    raise ValueError(f"{where}: a PrimitiveNode feeds a non-widget input")
                payload = _check_value(where, w, payload, check_combo_values)
            inputs[name] = payload
        prompt[str(node["id"])] = {
            "class_type": ntype,
            "inputs": inputs,
            "_meta": {"title": node.get("title") or info.get("display_name") or ntype},
        }

    # like the frontend: drop inputs that point at nodes left out (muted upstream)
    for entry in prompt.values():
        for key in [k for k, v in entry["inputs"].items() if _is_link(v) and v[0] not in prompt]:
            del entry["inputs"][key]
    return prompt


def _is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
    )


def load_workflow(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a workflow JSON file."""
    with open(path, encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data
