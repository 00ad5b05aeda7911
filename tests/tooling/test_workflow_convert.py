"""scripts/workflow_convert.py on saved Batch workflows: it reads them as the browser does.

A Batch saved with the removed ``seed_mode`` widget converts with the values web/saved_batch.js gives
it in the browser (the very file, run in node), and a workflow saved before the ``model`` widget
existed converts with the widget's default, [max], as the frontend keeps it. The node's inputs are
ComfyUI's own V1 view of the Batch node (its /object_info entry)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from scripts.pack_loader import REPO_ROOT
from scripts.workflow_convert import load_workflow, ui_to_api, upgrade_batch_values
from tests.support.ci import unavailable
from tests.support.node_calls import node

SAVED_WITH_SEED_MODE = REPO_ROOT / "tests" / "fixtures" / "batch_saved_with_seed_mode.json"
SAVE_IMAGE = {
    "input": {"required": {"images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "ComfyUI"}]}}
}
MAX = "FLUX.1 Kontext [max]"


def _object_info() -> dict[str, Any]:
    return {"FluxKontextMaxBatch": node("FluxKontextMaxBatch").GET_NODE_INFO_V1(), "SaveImage": SAVE_IMAGE}


def _in_browser(lists: list[list[Any]]) -> list[list[Any]]:
    """web/saved_batch.js's upgradeBatchValues on each list, run in node."""
    script = (
        f"import {{ upgradeBatchValues }} from {json.dumps((REPO_ROOT / 'web' / 'saved_batch.js').as_uri())};\n"
        f"console.log(JSON.stringify({json.dumps(lists)}.map(upgradeBatchValues)));"
    )
    try:
        done = subprocess.run(
            ["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60
        )
    except FileNotFoundError:
        unavailable("node is not installed")
    assert done.returncode == 0, done.stderr
    result: list[list[Any]] = json.loads(done.stdout)
    return result


def test_a_batch_saved_with_seed_mode_converts_as_the_browser_migrates_it() -> None:
    workflow = load_workflow(SAVED_WITH_SEED_MODE)
    saved = [n["widgets_values"] for n in workflow["nodes"] if n["type"] == "FluxKontextMaxBatch"]
    migrated = _in_browser(saved)
    prompt = ui_to_api(workflow, _object_info())
    names = ["prompts", "variations", "seed", "control", "guidance_scale", "aspect_ratio"]
    names += ["on_failure", "timeout_s"]
    batches = [entry["inputs"] for entry in prompt.values() if entry["class_type"] == "FluxKontextMaxBatch"]
    for inputs, values in zip(batches, migrated, strict=True):
        expected = {name: value for name, value in zip(names, values, strict=True) if name != "control"}
        assert inputs == {**expected, "model": MAX}
    assert [b["seed"] for b in batches] == [42, -1]  # "random" became -1: the API picks every seed
    assert [b["guidance_scale"] for b in batches] == [3.5, 6.5]  # nothing shifted by the removed widget


def test_the_script_and_the_browser_migrate_the_same_values() -> None:
    lists: list[list[Any]] = [
        ["a", 2, 42, "fixed", "increment", 3.5, "1:1", "return what succeeded", 1800],
        ["a", 2, 42, "fixed", "random", 3.5, "1:1", "fail", 600],
        ["a", 2, 42, "fixed", 3.5, "1:1", "fail", 600],  # today's layout, before the model widget
        ["a", 2, 42, "fixed", 3.5, "1:1", "fail", 600, MAX],  # today's layout: 9 values too
        ["a", 2, 42, "fixed", "sometimes", 3.5, "1:1", "fail", 600],  # not a seed mode: left alone
    ]
    assert [upgrade_batch_values(v) for v in lists] == _in_browser(lists)
    assert upgrade_batch_values(lists[3]) == lists[3]


def test_a_workflow_saved_before_the_model_widget_gets_its_default_and_a_short_one_is_refused() -> None:
    saved = ["a fox", 1, 7, "fixed", 3.5, "1:1", "fail", 600]
    workflow = {"nodes": [{"id": 1, "type": "FluxKontextMaxBatch", "widgets_values": saved}], "links": []}
    assert ui_to_api(workflow, _object_info())["1"]["inputs"]["model"] == MAX
    workflow["nodes"][0]["widgets_values"] = saved[:-1]  # a required widget's value missing
    with pytest.raises(ValueError, match="7 widgets_values but /object_info implies 9"):
        ui_to_api(workflow, _object_info())
