"""The pack inside a real headless ComfyUI (0.33.0 or 0.3.75), talking to the emulator over loopback."""

from __future__ import annotations

import copy
import io
import json
import threading
import time
from typing import Any

import numpy as np
import requests
from PIL import Image

from emulator import Emulator
from emulator.behaviour.imagegen import size_for_aspect_ratio
from scripts.comfy_harness import ComfyServer, interrupt, load_workflow, run_prompt, ui_to_api
from scripts.pack_loader import REPO_ROOT
from tests.support.graphs import generate_chain

T2I_WORKFLOW = REPO_ROOT / "example_workflows" / "Text to image - Kontext [max].json"
# saved by ComfyUI 0.33.0's frontend 1.49.6 with the V1 nodes, before the V3 port (tests/fixtures/)
SAVED_BY_FRONTEND = REPO_ROOT / "tests" / "fixtures" / "saved_by_frontend_1_49_6.json"
PACK_NAME = "comfyui-wavespeed-kontext"


def _example_prompt(object_info: dict[str, Any], prompt_text: str | None = None) -> dict[str, Any]:
    """The shipped example, converted strictly with /object_info (a stale widget order fails here)."""
    workflow = load_workflow(T2I_WORKFLOW)
    if prompt_text is not None:
        workflow = copy.deepcopy(workflow)
        gen = next(n for n in workflow["nodes"] if n["type"] == "FluxKontextMaxGenerate")
        gen["widgets_values"][0] = prompt_text
    return ui_to_api(workflow, object_info)


def _chain(prefix: str, prompt: str, ratio: str = "1:1", seed: int = 1) -> dict[str, Any]:
    return generate_chain(prefix, prompt, seed=seed, aspect_ratio=ratio, force_rerun=True)


def test_object_info_lists_both_nodes_with_documented_inputs(comfy_object_info: dict[str, Any]) -> None:
    gen = comfy_object_info["FluxKontextMaxGenerate"]
    assert gen["display_name"] == "FLUX.1 Kontext [max] Generate (WaveSpeed)"
    assert gen["category"] == "WaveSpeed/FLUX Kontext" and gen["description"]
    assert gen["output"] == ["WAVESPEED_TASK", "STRING"] and gen["output_name"] == ["task", "request_id"]
    req = gen["input"]["required"]
    assert req["prompt"][0] == "STRING" and req["prompt"][1]["multiline"] is True
    assert req["seed"][0] == "INT" and req["seed"][1]["control_after_generate"] is True
    assert (req["seed"][1]["min"], req["seed"][1]["max"]) == (-1, 2147483647)
    g = req["guidance_scale"]
    assert g[0] == "FLOAT" and (g[1]["min"], g[1]["max"], g[1]["default"], g[1]["step"]) == (
        1.0,
        20.0,
        3.5,
        0.1,
    )
    ratios = (
        req["aspect_ratio"][0]
        if isinstance(req["aspect_ratio"][0], list)
        else req["aspect_ratio"][1]["options"]
    )
    assert ratios == ["21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21"]
    assert req["sync_mode"][0] == "BOOLEAN" and req["sync_mode"][1]["default"] is False
    assert all(spec[1].get("tooltip") for spec in req.values())
    names = [*req, *gen["input"].get("optional", {})]
    assert not [n for n in names if "key" in n.lower()]  # no secret widget to end up in a workflow

    poll = comfy_object_info["WaveSpeedPollResult"]
    assert poll["display_name"] == "WaveSpeed Poll Result"
    assert poll["output"][:2] == ["IMAGE", "STRING"] and "images" in poll["output_name"]
    assert poll["input"]["optional"]["task"][0] == "WAVESPEED_TASK"
    assert poll["input"]["required"]["timeout_s"][0] == "INT"


def test_example_workflow_runs_and_saves_the_served_pixels(
    comfy_server: ComfyServer, comfy_object_info: dict[str, Any], wavespeed_emulator: Emulator
) -> None:
    wavespeed_emulator.configure(output_format="png")  # lossless, so pixels compare exactly
    result = run_prompt(comfy_server, _example_prompt(comfy_object_info, "e2e example, served pixels"))
    assert result.ok, result.error_line()
    assert len(result.images) == 1 and result.images[0].exists()
    saved = Image.open(result.images[0])
    assert saved.size == size_for_aspect_ratio("16:9")
    (task,) = [r for r in wavespeed_emulator.requests if r.route == "download"]
    served_url = wavespeed_emulator.base_url + task.path
    served = np.asarray(Image.open(io.BytesIO(requests.get(served_url, timeout=10).content)).convert("RGB"))
    # ComfyUI's SaveImage truncates 255*x; our decode is x/255, so pixels may differ by at most 1
    diff = np.abs(np.asarray(saved.convert("RGB"), dtype=np.int16) - served.astype(np.int16))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99
    # progress reached the UI: status text from our nodes over the websocket
    texts = [e["data"]["text"] for e in result.events_of("progress_text")]
    assert any("task" in t for t in texts), texts
    assert wavespeed_emulator.submissions == 1


def test_saved_png_metadata_and_templates_hold_no_key(
    comfy_server: ComfyServer,
    comfy_object_info: dict[str, Any],
    wavespeed_emulator: Emulator,
    e2e_api_key: str,
) -> None:
    api = _example_prompt(comfy_object_info, "e2e metadata check")
    result = run_prompt(comfy_server, api)
    assert result.ok, result.error_line()
    info = Image.open(result.images[0]).info
    assert "prompt" in info  # ComfyUI did embed the graph: so the check below means something
    for value in info.values():
        assert e2e_api_key not in str(value)
    assert e2e_api_key not in json.dumps(result.history)
    assert e2e_api_key not in comfy_server.log_text()
    templates = requests.get(comfy_server.url + "/workflow_templates", timeout=10).json()
    assert T2I_WORKFLOW.stem in templates[PACK_NAME]
    thumb = requests.get(
        f"{comfy_server.url}/api/workflow_templates/{PACK_NAME}/{T2I_WORKFLOW.stem}.jpg",
        timeout=10,
    )
    assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"


def test_workflow_saved_by_the_current_frontend_converts_strictly_and_runs(
    comfy_server: ComfyServer, comfy_object_info: dict[str, Any], wavespeed_emulator: Emulator
) -> None:
    """All five nodes, as frontend 1.49.6 saved them: same ids, input names and widget order today."""
    workflow = load_workflow(SAVED_BY_FRONTEND)
    assert workflow["extra"]["frontendVersion"] == "1.49.6"
    ours = {n["type"] for n in workflow["nodes"] if n["type"].startswith(("FluxKontext", "WaveSpeed"))}
    assert ours == {
        "FluxKontextMaxGenerate",
        "FluxKontextMaxEdit",
        "FluxKontextMaxMultiReference",
        "WaveSpeedPollResult",
        "WaveSpeedRecentTasks",
    }
    api = ui_to_api(workflow, comfy_object_info)  # raises on a changed widget order or name
    gen = next(v["inputs"] for v in api.values() if v["class_type"] == "FluxKontextMaxGenerate")
    assert (gen["seed"], gen["guidance_scale"], gen["aspect_ratio"]) == (1234, 4.5, "3:2")
    edit = next(v["inputs"] for v in api.values() if v["class_type"] == "FluxKontextMaxEdit")
    assert (edit["aspect_ratio"], edit["sync_mode"], edit["image_url"]) == ("4:3", True, "")
    # Recent Tasks lists the journal: give it one task whatever ran before in this session
    warm = run_prompt(comfy_server, _chain("w", "a task for Recent Tasks to list"))
    assert warm.ok, warm.error_line()
    result = run_prompt(comfy_server, api, timeout=120)
    assert result.ok, result.error_line()
    assert len(result.images) == 3  # Generate, Edit and Multi-Reference, each through Poll Result
    submits = sorted(r.path for r in wavespeed_emulator.requests if r.route == "submit")
    assert submits == sorted(
        [
            "/api/v3/wavespeed-ai/flux-kontext-max/text-to-image",  # the warm-up chain
            "/api/v3/wavespeed-ai/flux-kontext-max/text-to-image",
            "/api/v3/wavespeed-ai/flux-kontext-max",
            "/api/v3/wavespeed-ai/flux-kontext-max/multi",
        ]
    )
    listing = [o for o in result.outputs.values() if "text" in o]
    assert listing and "WaveSpeed journal" in str(listing[0]["text"])


def test_two_chains_in_one_prompt_run_concurrently(
    comfy_server: ComfyServer, wavespeed_emulator: Emulator
) -> None:
    wavespeed_emulator.configure(inference_s=2.0)
    prompt = {**_chain("a", "concurrent chain one", "16:9"), **_chain("b", "concurrent chain two", "9:16")}
    result = run_prompt(comfy_server, prompt)
    assert result.ok, result.error_line()
    assert len(result.images) == 2
    submits = sorted(r.t for r in wavespeed_emulator.requests if r.route == "submit")
    downloads = sorted(r.t for r in wavespeed_emulator.requests if r.route == "download")
    # Order, not wall time, proves it: the second task was submitted before the first output
    # existed to download, so both were in flight at once (serial chains submit after a download).
    assert len(submits) == 2 and submits[1] < downloads[0]


def test_task_failure_is_one_line_execution_error_and_server_keeps_serving(
    comfy_server: ComfyServer, wavespeed_emulator: Emulator
) -> None:
    wavespeed_emulator.next_tasks(fail="Failed to download image from the provided URL.", fail_code=1402)
    failed = run_prompt(comfy_server, _chain("f", "this one fails"))
    assert failed.status == "error"
    assert failed.error is not None and failed.error["node_type"] == "WaveSpeedPollResult"
    message = failed.error["exception_message"].strip()
    assert "\n" not in message
    assert "Failed to download image from the provided URL." in message and "1402" in message
    after = run_prompt(comfy_server, _chain("n", "the next prompt works"))
    assert after.ok, after.error_line()


def test_interrupt_during_a_long_task_ends_the_prompt_quickly(
    comfy_server: ComfyServer, wavespeed_emulator: Emulator
) -> None:
    wavespeed_emulator.next_tasks(never_finish=True)
    pressed: list[float] = []
    canceller = threading.Thread(
        target=_cancel_once_polling, args=(comfy_server, wavespeed_emulator, pressed)
    )
    canceller.start()
    result = run_prompt(comfy_server, _chain("i", "interrupt me"), timeout=60)
    ended = time.monotonic()
    canceller.join()
    assert pressed, "the task never started polling"
    assert result.status == "interrupted"
    assert ended - pressed[0] < 2.0
    later = run_prompt(comfy_server, _chain("j", "after the interrupt"))
    assert later.ok, later.error_line()


def test_bad_input_is_refused_before_any_request(
    comfy_server: ComfyServer, wavespeed_emulator: Emulator
) -> None:
    prompt = _chain("v", "   ")
    result = run_prompt(comfy_server, prompt)
    assert result.status == "error"
    assert result.error is not None and "prompt is empty" in result.error["exception_message"]
    assert wavespeed_emulator.requests == []


def _fixed_seed_chain(prefix: str, prompt: str) -> dict[str, Any]:
    return generate_chain(prefix, prompt, seed=77)


def test_requeue_with_a_fixed_seed_reuses_the_paid_task(
    comfy_server: ComfyServer, wavespeed_emulator: Emulator
) -> None:
    """Even with ComfyUI's cache off (--cache-none), the task journal answers a re-queue."""
    first = run_prompt(comfy_server, _fixed_seed_chain("r", "requeue me, same seed"))
    assert first.ok, first.error_line()
    again = run_prompt(comfy_server, _fixed_seed_chain("r", "requeue me, same seed"))
    assert again.ok, again.error_line()
    assert wavespeed_emulator.submissions == 1
    texts = [e["data"]["text"] for e in again.events_of("progress_text")]
    assert any(t.startswith("reused task") and "(no charge)" in t for t in texts), texts
    assert len(again.images) == 1


def test_interrupted_task_is_collected_by_requeuing_without_a_new_charge(
    comfy_server: ComfyServer, wavespeed_emulator: Emulator
) -> None:
    """Cancel mid-wait, queue the same graph again: it waits for the task already paid for."""
    wavespeed_emulator.configure(inference_s=4.0)
    prompt = _fixed_seed_chain("c", "cancel me, then collect me")
    canceller = threading.Thread(target=_cancel_once_polling, args=(comfy_server, wavespeed_emulator))
    canceller.start()
    cancelled = run_prompt(comfy_server, prompt, timeout=60)
    canceller.join()
    assert cancelled.status == "interrupted"
    collected = run_prompt(comfy_server, prompt, timeout=60)
    assert collected.ok, collected.error_line()
    assert wavespeed_emulator.submissions == 1 and len(collected.images) == 1


def _cancel_once_polling(server: ComfyServer, emulator: Emulator, pressed: list[float] | None = None) -> None:
    """Press Cancel (POST /interrupt) as soon as the task is being polled; note when."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(r.route == "result" for r in emulator.requests):
            if pressed is not None:
                pressed.append(time.monotonic())
            interrupt(server)
            return
        time.sleep(0.05)
