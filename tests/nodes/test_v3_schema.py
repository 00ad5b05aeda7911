"""The nodes' V3 declarations (one io.ComfyNode per node in nodes/) as ComfyUI itself sees them.

ComfyUI turns a V3 schema into the V1 /object_info form the frontend reads and saved workflows
depend on (input names, their order, widget options): these tests pin that view. A subprocess
imports ComfyUI's own ``comfy_api.latest`` first, as ComfyUI does before loading custom nodes, loads
the pack, calls its ``comfy_entrypoint`` and prints ComfyUI's V1 view of every node. The ComfyUI is
the harness's (``COMFYUI_DIR``, else .cache/comfyui/ComfyUI-0.33.0); run with ``COMFYUI_DIR`` at
0.3.75 to check the oldest release (no search aliases there). No network, no server.
"""

from __future__ import annotations

import inspect
import math
from types import ModuleType
from typing import Any

import pytest

from tests.support.comfy_probe import run_in_comfy
from tests.support.node_calls import node as node_class

NODE_IDS = [
    "FluxKontextMaxGenerate",
    "FluxKontextMaxEdit",
    "FluxKontextMaxMultiReference",
    "FluxKontextMaxBatch",
    "WaveSpeedPollResult",
    "WaveSpeedRecentTasks",
    "WaveSpeedConnectionCheck",
]
PRICED = {"FluxKontextMaxGenerate", "FluxKontextMaxEdit", "FluxKontextMaxMultiReference"}
SUBMIT = ["FluxKontextMaxGenerate", "FluxKontextMaxEdit", "FluxKontextMaxMultiReference"]
MODELS = ["FLUX.1 Kontext [max]", "FLUX.1 Kontext [pro]"]
RATIOS = ["21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21"]

PROBE = r"""
from comfy_api.latest import io
from scripts.pack_loader import load_pack

pack = load_pack()
out = {"mapping": hasattr(pack, "NODE_CLASS_MAPPINGS"), "has_entrypoint": hasattr(pack, "comfy_entrypoint"),
       "aliases": "search_aliases" in io.Schema.__dataclass_fields__, "nodes": {}}
nodes = asyncio.run(asyncio.run(pack.comfy_entrypoint()).get_node_list())
for node in nodes:
    info = node.GET_NODE_INFO_V1()
    own = node.fingerprint_inputs.__func__ is not io.ComfyNode.fingerprint_inputs.__func__
    fp = lambda **kw: node.fingerprint_inputs(**kw) if own else None
    out["nodes"][info["name"]] = {
        "v1": info,
        "is_v3": issubclass(node, io.ComfyNode), "async": asyncio.iscoroutinefunction(node.execute),
        "fingerprinted": own,
        "fingerprint": {"minus_one": repr(fp(seed=-1, index=0)), "seed5": repr(fp(seed=5, index=0)),
                        "forced": repr(fp(seed=5, force_rerun=True, index=0))},
    }

# execute runs the node's work: a blank prompt is refused before any request
gen = next(n for n in nodes if n.GET_SCHEMA().node_id == "FluxKontextMaxGenerate")
from types import SimpleNamespace
clone = type("Clone", (gen,), {"hidden": SimpleNamespace(unique_id="42")})  # what ComfyUI's class clone holds
try:
    asyncio.run(clone.execute(prompt="  ", seed=1, guidance_scale=3.5, aspect_ratio="1:1", sync_mode=False))
except Exception as exc:
    out["blank_prompt"] = [isinstance(exc, pack.wavespeed.core.errors.InvalidRequestError), str(exc)]

out["prices"] = sys.modules[pack.__name__ + ".nodes.shared.price_route"].prices()
print(json.dumps(out, default=repr))
"""


@pytest.fixture(scope="module")
def probe() -> dict[str, Any]:
    result: dict[str, Any] = run_in_comfy(PROBE)
    return result


def _inputs(probe: dict[str, Any], name: str, section: str = "required") -> dict[str, Any]:
    """One section of a node's inputs as /object_info serves them: name -> [type, options]."""
    inputs: dict[str, Any] = probe["nodes"][name]["v1"]["input"].get(section, {})
    return inputs


def test_inside_comfyui_the_pack_registers_v3_nodes_through_comfy_entrypoint(probe: dict[str, Any]) -> None:
    assert probe["mapping"] is False  # a mapping would make ComfyUI skip comfy_entrypoint
    assert probe["has_entrypoint"]
    assert list(probe["nodes"]) == NODE_IDS
    for name, node in probe["nodes"].items():
        assert node["is_v3"] and node["async"], name


def test_every_node_has_its_name_category_description_and_tooltips_and_no_key_widget(
    probe: dict[str, Any],
) -> None:
    names = {name: node["v1"]["display_name"] for name, node in probe["nodes"].items()}
    assert names == {
        "FluxKontextMaxGenerate": "FLUX.1 Kontext [max] Generate (WaveSpeed)",
        "FluxKontextMaxEdit": "FLUX.1 Kontext [max] Edit (WaveSpeed)",
        "FluxKontextMaxMultiReference": "FLUX.1 Kontext [max] Multi-Reference (WaveSpeed)",
        "FluxKontextMaxBatch": "FLUX.1 Kontext [max] Batch (WaveSpeed)",
        "WaveSpeedPollResult": "WaveSpeed Poll Result",
        "WaveSpeedRecentTasks": "WaveSpeed Recent Tasks",
        "WaveSpeedConnectionCheck": "WaveSpeed Connection Check",
    }
    for name, node in probe["nodes"].items():
        info = node["v1"]
        assert info["category"] == "WaveSpeed/FLUX Kontext" and info["description"], name
        for section in ("required", "optional"):
            for input_name, (_, options) in _inputs(probe, name, section).items():
                assert options.get("tooltip"), f"{name}.{input_name} has no tooltip"
                assert "key" not in input_name.lower(), f"{name}.{input_name} looks like a secret widget"
        assert all(info["output_tooltips"]), name
        # the node id is the hidden input (an output node also gets the prompt and PNG info, as
        # ComfyUI gives every output node): no comfy.org credentials are handed to our nodes
        output_node = (
            {"prompt": ["PROMPT"], "extra_pnginfo": ["EXTRA_PNGINFO"]} if info["output_node"] else {}
        )
        assert info["input"]["hidden"] == {"unique_id": ["UNIQUE_ID"], **output_node}, name


def test_generate_widgets_match_the_issue(probe: dict[str, Any]) -> None:
    required = _inputs(probe, "FluxKontextMaxGenerate")
    assert list(required) == ["prompt", "seed", "guidance_scale", "aspect_ratio", "sync_mode", "force_rerun"]
    assert required["prompt"] == ["STRING", {**required["prompt"][1], "multiline": True, "default": ""}]
    seed = required["seed"][1]
    assert (seed["min"], seed["max"], seed["default"], seed["control_after_generate"]) == (
        -1,
        2_147_483_647,
        0,
        True,
    )
    g = required["guidance_scale"][1]
    assert (g["min"], g["max"], g["step"], g["round"], g["default"]) == (1.0, 20.0, 0.1, 0.01, 3.5)
    kind, ratio = required["aspect_ratio"]
    assert kind == "COMBO" and ratio["options"] == RATIOS and ratio["default"] == "1:1"
    assert required["sync_mode"][0] == "BOOLEAN" and required["sync_mode"][1]["default"] is False
    assert (required["sync_mode"][1]["label_on"], required["sync_mode"][1]["label_off"]) == ("sync", "async")
    assert required["force_rerun"][0] == "BOOLEAN" and required["force_rerun"][1]["default"] is False


def test_edit_nodes_share_generate_widgets_with_match_input_first(probe: dict[str, Any]) -> None:
    generate = probe["nodes"]["FluxKontextMaxGenerate"]["v1"]
    for name in SUBMIT[1:]:
        info, required = probe["nodes"][name]["v1"], _inputs(probe, name)
        assert list(required) == list(_inputs(probe, "FluxKontextMaxGenerate")), name  # same widget order
        ratio = required["aspect_ratio"][1]
        assert ratio["options"] == ["match input", *RATIOS] and ratio["default"] == "match input", name
        for key in ("output", "output_name", "output_tooltips"):
            assert info[key] == generate[key], (name, key)
    assert generate["output"] == ["WAVESPEED_TASK", "STRING"] and generate["output_name"] == [
        "task",
        "request_id",
    ]
    edit = _inputs(probe, "FluxKontextMaxEdit", "optional")
    assert list(edit) == ["image", "image_url", "model"] and edit["image"][0] == "IMAGE"
    assert "first" in edit["image"][1]["tooltip"].lower()  # the batch policy is stated
    assert edit["image_url"][1] == {**edit["image_url"][1], "default": "", "multiline": False}
    multi = _inputs(probe, "FluxKontextMaxMultiReference", "optional")
    assert list(multi) == [*(f"image_{n}" for n in range(1, 6)), "image_urls", "model"]
    assert multi["image_urls"][1]["multiline"] is True


def test_every_paid_node_offers_the_model_last_with_max_the_default(probe: dict[str, Any]) -> None:
    """The model choice is each paid node's last input (widget values are saved by position: a
    workflow saved before it loads with [max]); its options are the families' labels, from the table."""
    for name in [*SUBMIT, "FluxKontextMaxBatch"]:
        optional = _inputs(probe, name, "optional")
        assert list(optional)[-1] == "model", name
        assert probe["nodes"][name]["v1"]["input_order"]["optional"][-1] == "model", name
        kind, options = optional["model"]
        assert kind == "COMBO" and options["options"] == MODELS, name
        assert options["default"] == "FLUX.1 Kontext [max]" and options["display_name"] == "model", name
        assert "$0.08" in options["tooltip"] and "$0.04" in options["tooltip"], name
    assert list(_inputs(probe, "FluxKontextMaxGenerate", "optional")) == ["model"]
    assert list(_inputs(probe, "FluxKontextMaxBatch", "optional")) == ["model"]


def test_batch_poll_and_recent_widgets_and_outputs(probe: dict[str, Any]) -> None:
    batch = _inputs(probe, "FluxKontextMaxBatch")
    assert list(batch) == [
        "prompts",
        "variations",
        "seed",
        "guidance_scale",
        "aspect_ratio",
        "on_failure",
        "timeout_s",
    ]  # fmt: skip  (one seed control: seed_mode is gone, web/saved_batch.js upgrades older workflows)
    assert batch["seed"][1]["control_after_generate"] is True
    assert batch["on_failure"][1]["options"] == ["return what succeeded", "fail"]
    assert (batch["variations"][1]["min"], batch["variations"][1]["max"]) == (1, 85)
    assert batch["timeout_s"][1]["default"] == 1800
    assert probe["nodes"]["FluxKontextMaxBatch"]["v1"]["output_name"] == [
        "images", "image_urls", "request_ids", "failures"
    ]  # fmt: skip
    poll = probe["nodes"]["WaveSpeedPollResult"]["v1"]
    assert list(_inputs(probe, "WaveSpeedPollResult")) == ["timeout_s", "nsfw_policy"]
    assert list(_inputs(probe, "WaveSpeedPollResult", "optional")) == ["task", "request_id"]
    assert _inputs(probe, "WaveSpeedPollResult", "optional")["task"][0] == "WAVESPEED_TASK"
    assert poll["output"] == ["IMAGE", "STRING", "STRING", "INT", "BOOLEAN"]
    recent = probe["nodes"]["WaveSpeedRecentTasks"]["v1"]
    status = _inputs(probe, "WaveSpeedRecentTasks")["status_filter"][1]
    assert status["options"] == ["all", "in flight", "completed", "failed"] and status["default"] == "all"
    assert recent["output"] == ["STRING", "STRING"] and recent["output_name"] == ["request_id", "tasks"]


def test_every_declared_input_reaches_the_nodes_work(probe: dict[str, Any]) -> None:
    """ComfyUI calls ``execute`` with the declared inputs by name, leaving out unconnected optional
    ones (the node id is on the class, ``cls.hidden``): ``execute`` takes exactly those (in order),
    optional ones with a default; a paid node's also takes, by name, the widgets of body parameters
    added to the table later."""
    for name in NODE_IDS:
        params = inspect.signature(node_class(name).execute).parameters
        required, optional = list(_inputs(probe, name)), list(_inputs(probe, name, "optional"))
        named = [p for p, v in params.items() if v.kind is not v.VAR_KEYWORD]
        assert named == [*required, *optional], name
        takes_more = any(v.kind is v.VAR_KEYWORD for v in params.values())
        assert takes_more == (name in [*PRICED, "FluxKontextMaxBatch"]), name
        for input_name in optional:
            assert params[input_name].default is not inspect.Parameter.empty, (name, input_name)


def test_fingerprint_inputs_reruns_seed_minus_one_and_force_rerun(probe: dict[str, Any]) -> None:
    for name in PRICED:
        fingerprint = probe["nodes"][name]["fingerprint"]
        assert math.isnan(float(fingerprint["minus_one"])) and math.isnan(float(fingerprint["forced"]))
        assert fingerprint["seed5"] == "5", name
    assert math.isnan(float(probe["nodes"]["WaveSpeedRecentTasks"]["fingerprint"]["seed5"]))
    # every node but Poll Result has a cache rule of its own (Poll Result: ComfyUI's own caching)
    declared = {name for name, node in probe["nodes"].items() if node["fingerprinted"]}
    assert declared == set(NODE_IDS) - {"WaveSpeedPollResult"}


def test_v3_execute_runs_the_node_code(probe: dict[str, Any]) -> None:
    typed, message = probe["blank_prompt"]
    assert typed and "prompt is empty" in message


def test_no_node_is_a_comfy_org_partner_node(probe: dict[str, Any]) -> None:
    """A partner node (api_node) gets a comfy.org sign-in gate before Run in the frontend and comfy.org
    credentials as hidden inputs; the frontend's own price_badge is drawn only on those: none of ours."""
    for name, node in probe["nodes"].items():
        info = node["v1"]
        assert not info.get("api_node"), name
        assert info.get("price_badge") is None, name
        assert set(info["input"]["hidden"]) <= {"unique_id", "prompt", "extra_pnginfo"}, name


def test_every_node_is_found_by_wavespeed_and_kontext_where_comfyui_has_search_aliases(
    probe: dict[str, Any],
) -> None:
    for name, node in probe["nodes"].items():
        info = node["v1"]
        if probe["aliases"]:
            words = " ".join([info["display_name"], *info["search_aliases"]]).lower()
            assert "wavespeed" in words and "kontext" in words, name
        else:  # 0.3.75: no such field (the web extension adds the aliases for frontends that read them)
            assert info.get("search_aliases") is None, name


def test_the_price_definition_holds_each_paid_nodes_model_price_and_multipliers(
    probe: dict[str, Any], pack: ModuleType
) -> None:
    prices = probe["prices"]
    assert prices["line_break"] == pack.nodes.shared.pricing.LINE_BREAK
    assert prices["not_blank"] == pack.nodes.shared.pricing.NOT_BLANK
    models, body_params = pack.wavespeed.api.models, pack.wavespeed.api.body_params

    def model(name: str) -> Any:
        return models.model_for(body_params.MODEL_KIND[node_class(name).KIND])

    by_family = {"FLUX.1 Kontext [max]": 0.08, "FLUX.1 Kontext [pro]": 0.04}
    assert {name: model(name).price_usd for name in [*PRICED, "FluxKontextMaxBatch"]} == dict.fromkeys(
        [*PRICED, "FluxKontextMaxBatch"], 0.08
    )
    rule = {"unit_usd": 0.08, "model_input": "model", "unit_by_model": by_family}
    assert prices["nodes"] == {
        **{name: {**rule, "per": []} for name in PRICED},
        "FluxKontextMaxBatch": {**rule, "per": ["variations", "prompts"]},
    }
    assert prices["multipliers"] == {"count": "number", "variations": "number", "prompts": "lines"}


#: Plain-word labels the frontend shows; the saved widget names (the input ids) stay as they were.
LABELS = {
    "FluxKontextMaxGenerate": {
        "guidance_scale": "guidance",
        "aspect_ratio": "aspect ratio",
        "sync_mode": "wait in one request",
        "force_rerun": "always a new image",
    },
    "FluxKontextMaxBatch": {
        "variations": "images per prompt",
        "guidance_scale": "guidance",
        "aspect_ratio": "aspect ratio",
        "on_failure": "if some fail",
        "timeout_s": "give up after (s)",
    },
    "WaveSpeedPollResult": {"timeout_s": "give up after (s)", "nsfw_policy": "if flagged NSFW"},
    "WaveSpeedRecentTasks": {"index": "pick (0 = newest)", "status_filter": "show"},
}


def test_widgets_carry_plain_word_labels_and_keep_their_saved_names(probe: dict[str, Any]) -> None:
    for name, labels in LABELS.items():
        required = _inputs(probe, name)
        assert {k: required[k][1].get("display_name") for k in labels} == labels, name
    assert _inputs(probe, "WaveSpeedPollResult", "optional")["request_id"][1]["display_name"] == "request id"
    assert _inputs(probe, "FluxKontextMaxEdit", "optional")["image_url"][1]["display_name"] == "image URL"
    for name in SUBMIT:
        assert _inputs(probe, name)["force_rerun"][1]["display_name"] == "always a new image", name


SET_PROGRESS_PROBE = r"""
import json, os, sys
comfy, root = sys.argv[1], sys.argv[2]
sys.path.insert(0, comfy)
os.chdir(comfy)
import comfy_api.latest
sys.path.insert(0, root)
from scripts.pack_loader import load_pack
pack = load_pack()
import importlib
call = importlib.import_module(pack.__name__ + ".nodes.shared.comfy_bridge")._public_set_progress()
print(json.dumps({"name": getattr(call, "__name__", None)}))
"""


def test_previews_use_comfyuis_public_progress_call_where_it_has_one() -> None:
    """Both supported releases offer ``ComfyAPISync().execution.set_progress`` with a preview image:
    the bridge finds it there (outside ComfyUI it falls back to ProgressBar, tests/nodes/shared)."""
    found = run_in_comfy(SET_PROGRESS_PROBE)
    assert found["name"] == "set_progress"
