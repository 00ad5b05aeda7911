"""Smoke tests of the real-ComfyUI harness itself, with built-in nodes only (no WaveSpeed nodes).

They prove the pieces the pack's e2e tests stand on: the server starts with our shim, a UI-format
workflow converts like the frontend does and really runs, a stale widget order fails loudly, and
stopping the server leaves no process behind.
"""

from __future__ import annotations

import copy
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from scripts.comfy_harness import (
    PACK_NAME,
    REPO_ROOT,
    ComfyServer,
    frontend_root,
    interrupt,
    load_workflow,
    run_prompt,
    ui_to_api,
)

pytestmark = pytest.mark.e2e

RED = 0xFF0000


def _widget_input(name: str, typ: str, link: int | None = None) -> dict[str, Any]:
    return {"name": name, "type": typ, "widget": {"name": name}, "link": link}


def _node(
    nid: int,
    ntype: str,
    widgets_values: list[Any],
    inputs: list[dict[str, Any]] | None = None,
    outputs: list[dict[str, Any]] | None = None,
    mode: int = 0,
) -> dict[str, Any]:
    """A node as the frontend saves it (pos/size/flags included so the shape is realistic)."""
    return {
        "id": nid,
        "type": ntype,
        "pos": [100 * nid, 100],
        "size": [300, 120],
        "flags": {},
        "order": nid,
        "mode": mode,
        "inputs": inputs or [],
        "outputs": outputs or [],
        "properties": {"Node name for S&R": ntype},
        "widgets_values": widgets_values,
    }


def empty_to_save_workflow(width: int, height: int, prefix: str) -> dict[str, Any]:
    """EmptyImage -> SaveImage in UI format, plus a Note the converter must drop."""
    return {
        "id": str(uuid.uuid4()),
        "revision": 0,
        "last_node_id": 3,
        "last_link_id": 1,
        "nodes": [
            _node(
                1,
                "EmptyImage",
                [width, height, 1, RED],
                inputs=[
                    _widget_input("width", "INT"),
                    _widget_input("height", "INT"),
                    _widget_input("batch_size", "INT"),
                    _widget_input("color", "INT"),
                ],
                outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [1]}],
            ),
            _node(
                2,
                "SaveImage",
                [prefix],
                inputs=[
                    {"name": "images", "type": "IMAGE", "link": 1},
                    _widget_input("filename_prefix", "STRING"),
                ],
            ),
            _node(3, "Note", ["frontend-only: never sent to the server"]),
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"]],
        "groups": [],
        "config": {},
        "extra": {"ds": {"scale": 1, "offset": [0, 0]}},
        "version": 0.4,
    }


# ------------------------------------------------------------------------------------ (a) a real run


@pytest.mark.smoke
def test_builtin_workflow_runs_and_saves_png(comfy_server: ComfyServer) -> None:
    prefix = f"smoke/{uuid.uuid4().hex[:8]}"
    api = ui_to_api(empty_to_save_workflow(96, 40, prefix), comfy_server.object_info())
    assert set(api) == {"1", "2"}  # the Note is gone
    assert api["1"]["inputs"] == {"width": 96, "height": 40, "batch_size": 1, "color": RED}
    assert api["2"]["inputs"] == {"images": ["1", 0], "filename_prefix": prefix}

    result = run_prompt(comfy_server, api, timeout=60)

    assert result.ok, result.error_line()
    assert result.status == "success" and result.prompt_id
    assert len(result.images) == 1
    png = result.images[0]
    assert png.is_file() and comfy_server.output_dir in png.parents
    with Image.open(png) as im:
        assert im.format == "PNG"
        assert im.size == (96, 40)
        assert im.convert("RGB").getpixel((0, 0)) == (255, 0, 0)
    types = [e.get("type") for e in result.events]
    assert "executing" in types and types[-1] == "execution_success"
    assert result.outputs["2"]["images"][0]["filename"] == png.name


def test_resubmitting_the_same_graph_runs_again(comfy_server: ComfyServer) -> None:
    """--cache-none: an identical prompt really executes again and writes a second file."""
    api = ui_to_api(empty_to_save_workflow(8, 8, f"smoke/{uuid.uuid4().hex[:8]}"), comfy_server.object_info())
    first = run_prompt(comfy_server, api, timeout=60)
    second = run_prompt(comfy_server, api, timeout=60)
    assert first.ok and second.ok
    assert first.images[0] != second.images[0]
    assert all(p.is_file() for p in first.images + second.images)


def test_reroute_primitive_and_bypass_follow_the_frontend(comfy_server: ComfyServer) -> None:
    """PrimitiveNode value is inlined, Reroute is followed, a bypassed ImageInvert passes its input on."""
    wf = empty_to_save_workflow(10, 10, f"smoke/{uuid.uuid4().hex[:8]}")
    nodes = wf["nodes"]
    nodes[0]["inputs"][0]["link"] = 5  # width <- PrimitiveNode
    nodes[0]["outputs"][0]["links"] = [2]
    nodes += [
        _node(
            4,
            "Reroute",
            [],
            inputs=[{"name": "", "type": "*", "link": 2}],
            outputs=[{"name": "", "type": "IMAGE", "links": [3]}],
        ),
        _node(
            5,
            "ImageInvert",
            [],
            inputs=[{"name": "image", "type": "IMAGE", "link": 3}],
            outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [1]}],
            mode=4,
        ),
        _node(6, "PrimitiveNode", [33, "fixed"], outputs=[{"name": "INT", "type": "INT", "links": [5]}]),
    ]
    wf["links"] = [
        [1, 5, 0, 2, 0, "IMAGE"],
        [2, 1, 0, 4, 0, "*"],
        [3, 4, 0, 5, 0, "IMAGE"],
        [5, 6, 0, 1, 0, "INT"],
    ]
    api = ui_to_api(wf, comfy_server.object_info())
    assert set(api) == {"1", "2"}
    assert api["1"]["inputs"]["width"] == 33
    assert api["2"]["inputs"]["images"] == ["1", 0]

    result = run_prompt(comfy_server, api, timeout=60)
    assert result.ok, result.error_line()
    with Image.open(result.images[0]) as im:
        assert im.size == (33, 10)
        assert im.convert("RGB").getpixel((0, 0)) == (255, 0, 0)  # not inverted


def test_invalid_prompt_is_reported_as_rejected(comfy_server: ComfyServer) -> None:
    api = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "smoke/x"}},  # images missing
    }
    result = run_prompt(comfy_server, api, timeout=30)
    assert result.status == "rejected"
    assert "images" in result.error_line()


@pytest.mark.smoke
def test_pack_and_shim_load_without_import_errors(comfy_server: ComfyServer) -> None:
    log = comfy_server.log_text()
    assert "Failed to execute startup-script" not in log
    failed = [line for line in log.splitlines() if "IMPORT FAILED" in line and PACK_NAME in line]
    assert not failed, "the pack failed to import:\n" + comfy_server.log_tail(80)
    # the pack's __init__ logs and swallows its own errors, so also check that it registered nodes
    ours = [
        n
        for n, i in comfy_server.object_info().items()
        if i.get("python_module") == f"custom_nodes.{PACK_NAME}"
    ]
    assert ours, "the pack registered no nodes:\n" + comfy_server.log_tail(80)


@pytest.mark.smoke
def test_server_serves_the_frontend_its_release_pins(comfy_server: ComfyServer) -> None:
    """0.3.75 runs in 0.33.0's venv but must get its own frontend (1.32.9), not the installed 1.49.6."""
    expected = frontend_root(comfy_server.comfy_path)
    (line,) = [ln for ln in comfy_server.log_text().splitlines() if "web root:" in ln]
    if expected is None:  # the release pins the installed frontend package
        assert "comfyui_frontend_package" in line, line
    else:
        assert line.rstrip().endswith(str(expected)), line


# ------------------------------------------------------------------------- (b) strict conversion


def test_stale_widget_order_raises(comfy_object_info: dict[str, Any]) -> None:
    good = empty_to_save_workflow(64, 48, "smoke/x")
    ui_to_api(good, comfy_object_info)

    missing = copy.deepcopy(good)
    missing["nodes"][0]["widgets_values"] = [64, 48, 1]
    with pytest.raises(ValueError, match=r"node 1 \(EmptyImage\).*3 widgets_values.*implies 4"):
        ui_to_api(missing, comfy_object_info)

    out_of_range = copy.deepcopy(good)
    out_of_range["nodes"][0]["widgets_values"] = [64, 48, 1, -5]
    with pytest.raises(ValueError, match=r"node 1 \(EmptyImage\) input 'color'"):
        ui_to_api(out_of_range, comfy_object_info)

    def scale(values: list[Any]) -> dict[str, Any]:
        wf = copy.deepcopy(good)
        wf["nodes"][1]["inputs"][0]["link"] = 2
        wf["nodes"].append(
            _node(
                7,
                "ImageScale",
                values,
                inputs=[{"name": "image", "type": "IMAGE", "link": 1}],
                outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [2]}],
            )
        )
        wf["links"] = [[1, 1, 0, 7, 0, "IMAGE"], [2, 7, 0, 2, 0, "IMAGE"]]
        return wf

    api = ui_to_api(scale(["bilinear", 32, 16, "center"]), comfy_object_info)
    assert api["7"]["inputs"] == {
        "image": ["1", 0],
        "upscale_method": "bilinear",
        "width": 32,
        "height": 16,
        "crop": "center",
    }
    with pytest.raises(ValueError, match=r"node 7 \(ImageScale\) input 'upscale_method'.*COMBO"):
        ui_to_api(scale([32, "bilinear", 16, "center"]), comfy_object_info)
    with pytest.raises(ValueError, match=r"node 7 \(ImageScale\) input 'width'.*INT"):
        ui_to_api(scale(["bilinear", "32", 16, "center"]), comfy_object_info)


def test_control_after_generate_takes_a_widget_value(comfy_object_info: dict[str, Any]) -> None:
    """INT with control_after_generate (and by default `seed`/`noise_seed`) stores a second value."""
    wf = {"nodes": [_node(1, "RandomNoise", [123, "randomize"])], "links": []}
    assert ui_to_api(wf, comfy_object_info)["1"]["inputs"] == {"noise_seed": 123}
    wf["nodes"][0]["widgets_values"] = [123]
    with pytest.raises(ValueError, match="RandomNoise"):
        ui_to_api(wf, comfy_object_info)
    wf["nodes"][0]["widgets_values"] = [123, 456]
    with pytest.raises(ValueError, match="control_after_generate"):
        ui_to_api(wf, comfy_object_info)

    fake = {
        "Fake": {
            "input": {
                "required": {"seed": ["INT", {}], "count": ["INT", {"control_after_generate": False}]},
                "optional": {"mode": [["a", "b"], {"control_after_generate": True}]},
            },
            "input_order": {"required": ["seed", "count"], "optional": ["mode"]},
        }
    }
    wf = {"nodes": [_node(1, "Fake", [7, "fixed", 2, "b", "increment", ""])], "links": []}
    assert ui_to_api(wf, fake)["1"]["inputs"] == {"seed": 7, "count": 2, "mode": "b"}


def test_unknown_node_type_raises(comfy_object_info: dict[str, Any]) -> None:
    wf = {"nodes": [_node(1, "NoSuchNode", [])], "links": []}
    with pytest.raises(ValueError, match="NoSuchNode.*not in /object_info"):
        ui_to_api(wf, comfy_object_info)


# ------------------------------------------------------------------------------ (c) clean shutdown


def test_stop_leaves_no_process_and_no_temp_dir(comfy_installed: Path) -> None:
    server = ComfyServer(pack_dir=None)  # the shim only: the quickest real start
    with server:
        pid = server.pid
        base = server.base_dir
        assert pid is not None and server.is_running()
        assert server.object_info()["SaveImage"]["output_node"] is True
    assert server.last_pid == pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not Path(base).exists()


# ------------------------------------------------------ events, errors and interrupts through the server


def _slow(seconds: float, fail: bool = False) -> dict[str, Any]:
    return {"1": {"class_type": "HarnessSlowNode", "inputs": {"seconds": seconds, "fail": fail}}}


def test_progress_text_and_progress_events_are_collected(comfy_server: ComfyServer) -> None:
    result = run_prompt(comfy_server, _slow(0.2), timeout=30)
    assert result.ok, result.error_line()
    texts = [e["data"]["text"] for e in result.events_of("progress_text")]
    assert texts and texts[-1] == "step 4/4"
    assert all(e["data"]["node"] == "1" for e in result.events_of("progress_text"))
    assert [e["data"]["value"] for e in result.events_of("progress")][-1] == 4
    assert result.outputs["1"]["text"] == ["done"]


def test_node_exception_is_reported(comfy_server: ComfyServer) -> None:
    result = run_prompt(comfy_server, _slow(0.05, fail=True), timeout=30)
    assert result.status == "error"
    assert result.error is not None and result.error["node_type"] == "HarnessSlowNode"
    assert result.error_line() == "node 1 (HarnessSlowNode): harness node failed on purpose"


def test_interrupt_stops_a_running_prompt(comfy_server: ComfyServer) -> None:
    import threading
    import time

    def cancel_when_running() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            running = comfy_server.get_json("/queue").get("queue_running") or []
            if running:
                time.sleep(0.3)
                interrupt(comfy_server)
                return
            time.sleep(0.05)

    canceller = threading.Thread(target=cancel_when_running, daemon=True)
    canceller.start()
    result = run_prompt(comfy_server, _slow(30.0), timeout=60)
    canceller.join(5)
    assert result.status == "interrupted", result.error_line()
    # stopped part-way, proven by the node's own progress events rather than a wall-clock bound
    steps = [e["data"]["text"] for e in result.events_of("progress_text")]
    assert steps and steps[-1] != "step 600/600", steps[-1:]
    assert result.error_line() == "interrupted at node 1 (HarnessSlowNode)"


# ------------------------------------------------------------------------- the shipped workflows


SHIPPED = sorted((REPO_ROOT / "example_workflows").glob("*.json"))


@pytest.mark.smoke
@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_workflow_converts_strictly_and_runs(
    path: Path, comfy_server: ComfyServer, wavespeed_emulator: Any
) -> None:
    """Every template users get converts with the live node definitions (no stale widget order) and runs.

    The server starts with example_workflows/input/ copied into its input dir, so LoadImage's combo
    check sees the shipped images exactly as a user's ComfyUI would after copying them.
    """
    workflow = load_workflow(path)
    api = ui_to_api(workflow, comfy_server.object_info())
    result = run_prompt(comfy_server, api, timeout=120)
    assert result.ok, result.error_line()
    assert result.images and all(p.is_file() for p in result.images)


# ------------------------------------------------------------------------------------ the demo itself


def test_demo_run_keeps_images_and_the_printed_log_under_out(
    comfy_installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What ./scripts/demo.sh runs, against its own emulator: the log path it prints exists afterwards."""
    from scripts import run_workflow

    monkeypatch.delenv("WAVESPEED_API_KEY", raising=False)
    out = tmp_path / "out"
    assert run_workflow.main([str(run_workflow.DEFAULT_WORKFLOW), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    log = out / "comfyui.log"
    assert f"(log: {log})" in printed
    assert log.is_file() and "Starting server" in log.read_text(encoding="utf-8")
    assert [p.suffix for p in out.iterdir() if p != log] == [".png"]
