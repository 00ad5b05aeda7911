"""The V3 declarations (nodes/v3.py) as ComfyUI itself sees them, compared with the V1 ones.

ComfyUI turns a V3 schema back into the V1 /object_info form the frontend reads and saved workflows
depend on (input names, their order, widget options). A subprocess imports ComfyUI's own
``comfy_api.latest`` first, as ComfyUI does before loading custom nodes, loads the pack, calls its
``comfy_entrypoint`` and prints ComfyUI's V1 view of every V3 node next to the V1 declaration.
The ComfyUI is the harness's (``COMFYUI_DIR``, else .cache/comfyui/ComfyUI 0.3.75); run with
0.33.0's interpreter and ``COMFYUI_DIR`` to check the price badges there. No network, no server.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.support.comfy_probe import run_in_comfy

NODE_IDS = [
    "FluxKontextMaxGenerate",
    "FluxKontextMaxEdit",
    "FluxKontextMaxMultiReference",
    "FluxKontextMaxBatch",
    "WaveSpeedPollResult",
    "WaveSpeedRecentTasks",
]
PRICED = {"FluxKontextMaxGenerate", "FluxKontextMaxEdit", "FluxKontextMaxMultiReference"}

PROBE = r"""
import asyncio, json, math, os, sys
comfy, root = sys.argv[1], sys.argv[2]
sys.path.insert(0, comfy)
os.chdir(comfy)
import comfy_api.latest  # what ComfyUI has imported before it loads any custom node
from comfy_api.latest import io
sys.path.insert(0, root)
from scripts.pack_loader import load_pack

pack = load_pack()
out = {"mapping": pack.NODE_CLASS_MAPPINGS, "has_entrypoint": hasattr(pack, "comfy_entrypoint"),
       "price_badges": hasattr(io, "PriceBadge"), "nodes": {}}
nodes = asyncio.run(asyncio.run(pack.comfy_entrypoint()).get_node_list())
v1 = pack.nodes.NODE_CLASS_MAPPINGS
for node in nodes:
    info = node.GET_NODE_INFO_V1()
    old = v1[info["name"]]
    own = node.fingerprint_inputs.__func__ is not io.ComfyNode.fingerprint_inputs.__func__
    fp = lambda **kw: node.fingerprint_inputs(**kw) if own else None
    out["nodes"][info["name"]] = {
        "v3": info,
        "v1": {"input": old.INPUT_TYPES(), "output": list(old.RETURN_TYPES), "output_name": list(old.RETURN_NAMES),
               "output_tooltips": list(old.OUTPUT_TOOLTIPS), "display_name": pack.nodes.NODE_DISPLAY_NAME_MAPPINGS[info["name"]],
               "category": old.CATEGORY, "description": old.DESCRIPTION},
        "is_v3": issubclass(node, io.ComfyNode), "async": asyncio.iscoroutinefunction(node.execute),
        "fingerprinted": [own, hasattr(old, "IS_CHANGED")],
        "fingerprint": {"minus_one": repr(fp(seed=-1, index=0)), "seed5": repr(fp(seed=5, index=0)),
                        "forced": repr(fp(seed=5, force_rerun=True, index=0))},
    }

# execute goes through the V1 code: a blank prompt is refused before any request
gen = next(n for n in nodes if n.GET_SCHEMA().node_id == "FluxKontextMaxGenerate")
from types import SimpleNamespace
clone = type("Clone", (gen,), {"hidden": SimpleNamespace(unique_id="42")})  # what ComfyUI's class clone holds
try:
    asyncio.run(clone.execute(prompt="  ", seed=1, guidance_scale=3.5, aspect_ratio="1:1", sync_mode=False))
except Exception as exc:
    out["blank_prompt"] = [isinstance(exc, pack.wavespeed.api.errors.InvalidRequestError), str(exc)]

# a node that gains a `count` widget: its badge follows it with no other change
v3 = sys.modules[pack.__name__ + ".nodes.v3"]
class WithCount(v1["FluxKontextMaxGenerate"]):
    @classmethod
    def INPUT_TYPES(cls):
        spec = super().INPUT_TYPES()
        spec["required"]["count"] = ("INT", {"default": 1, "min": 1, "max": 4, "tooltip": "variations"})
        return spec
info = v3.schema_for("FluxKontextMaxGenerate", WithCount).get_v1_info(WithCount)
out["with_count"] = {"price_badge": getattr(info, "price_badge", None), "order": info.input_order}
print(json.dumps(out, default=repr))
"""


@pytest.fixture(scope="module")
def probe() -> dict[str, Any]:
    result: dict[str, Any] = run_in_comfy(PROBE)
    return result


def _v1_view(spec: Any) -> tuple[str, dict[str, Any]]:
    """A V1 input spec as ComfyUI's V1 view of a V3 input writes it (combos: "COMBO" + options)."""
    kind, opts = spec[0], dict(spec[1]) if len(spec) > 1 else {}
    if isinstance(kind, list):
        return "COMBO", {**opts, "options": kind}
    return kind, opts


def test_inside_comfyui_the_pack_registers_v3_nodes_through_comfy_entrypoint(probe: dict[str, Any]) -> None:
    assert probe["mapping"] is None  # a mapping would make ComfyUI skip comfy_entrypoint
    assert probe["has_entrypoint"]
    assert list(probe["nodes"]) == NODE_IDS
    for name, node in probe["nodes"].items():
        assert node["is_v3"] and node["async"], name


def test_v3_nodes_keep_every_input_name_order_option_and_output(probe: dict[str, Any]) -> None:
    for name, node in probe["nodes"].items():
        v3, v1 = node["v3"], node["v1"]
        for section in ("required", "optional"):
            declared = v1["input"].get(section, {})
            assert v3["input_order"].get(section, []) == list(declared), (name, section)
            for input_name, spec in declared.items():
                kind, options = _v1_view(spec)
                got_kind, got_options = v3["input"][section][input_name]
                assert got_kind == kind, (name, input_name)
                assert {k: got_options.get(k) for k in options} == options, (name, input_name)
        # (ComfyUI adds its own account hidden inputs to API nodes; the pack never reads them)
        assert v3["input"]["hidden"]["unique_id"] == ["UNIQUE_ID"], name
        for key in ("output", "output_name", "output_tooltips", "display_name", "category", "description"):
            assert v3[key] == v1[key], (name, key)


def test_fingerprint_inputs_reruns_seed_minus_one_and_force_rerun(probe: dict[str, Any]) -> None:
    for name in PRICED:
        fingerprint = probe["nodes"][name]["fingerprint"]
        assert math.isnan(float(fingerprint["minus_one"])) and math.isnan(float(fingerprint["forced"]))
        assert fingerprint["seed5"] == "5", name
    assert math.isnan(float(probe["nodes"]["WaveSpeedRecentTasks"]["fingerprint"]["seed5"]))
    for name, node in probe["nodes"].items():  # defined exactly where the V1 class has IS_CHANGED
        own, v1_has = node["fingerprinted"]
        assert own == v1_has, name
    assert probe["nodes"]["WaveSpeedPollResult"]["fingerprinted"] == [False, False]


def test_v3_execute_runs_the_node_code(probe: dict[str, Any]) -> None:
    typed, message = probe["blank_prompt"]
    assert typed and "prompt is empty" in message


def test_price_badge_on_paid_nodes_only_where_comfyui_has_price_badges(probe: dict[str, Any]) -> None:
    for name, node in probe["nodes"].items():
        badge = node["v3"].get("price_badge")
        if probe["price_badges"] and name in PRICED:
            assert node["v3"]["api_node"] is True  # the frontend draws price badges on API nodes only
            assert badge["engine"] == "jsonata" and badge["depends_on"]["widgets"] == []
            assert badge["expr"] == '{"type": "text", "text": "$" & $formatNumber(0.08, "0.00") & "/Run"}'
        elif probe["price_badges"] and name == "FluxKontextMaxBatch":  # the whole batch's price
            assert node["v3"]["api_node"] is True
            widgets = [w["name"] for w in badge["depends_on"]["widgets"]]
            assert widgets == ["variations", "prompts"]
            assert "0.08 * widgets.variations * $count($split(widgets.prompts" in badge["expr"]
        else:  # free nodes, and every node on a ComfyUI without io.PriceBadge (0.3.75)
            assert badge is None and not node["v3"]["api_node"], name


def test_a_count_widget_is_all_it_takes_for_the_badge_to_follow_it(probe: dict[str, Any]) -> None:
    if not probe["price_badges"]:
        pytest.skip("this ComfyUI has no io.PriceBadge (0.3.75): run with COMFYUI_DIR at 0.33.0")
    badge = probe["with_count"]["price_badge"]
    assert badge["depends_on"]["widgets"] == [{"name": "count", "type": "INT"}]
    assert "$formatNumber(0.08 * widgets.count," in badge["expr"]
    assert probe["with_count"]["order"]["required"][-1] == "count"
