"""The side-by-side template: four Generate -> Poll -> Save chains in one graph, run concurrently.

With UPDATE_SCREENSHOTS=1 the run also rewrites the template's thumbnail
("example_workflows/Side by side - Kontext [max].jpg") as a collage of the four saved images.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import requests
from PIL import Image, ImageDraw, ImageFont

from emulator import Emulator
from emulator.behaviour.imagegen import size_for_aspect_ratio
from scripts.comfy_harness import PACK_NAME, ComfyServer, load_workflow, run_prompt, ui_to_api
from scripts.pack_loader import REPO_ROOT

STEM = "Side by side - Kontext [max]"
WORKFLOW = REPO_ROOT / "example_workflows" / f"{STEM}.json"
THUMBNAIL = WORKFLOW.with_suffix(".jpg")
INFERENCE_S = 1.5


def _chains(workflow: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """SaveImage node id -> (aspect ratio of its Generate node, filename_prefix), following the links."""
    nodes = {n["id"]: n for n in workflow["nodes"]}
    origin = {link[0]: link[1] for link in workflow["links"]}  # link id -> origin node id
    out = {}
    for node in nodes.values():
        if node["type"] != "SaveImage":
            continue
        poll = nodes[origin[node["inputs"][0]["link"]]]
        gen = nodes[origin[poll["inputs"][0]["link"]]]
        assert poll["type"] == "WaveSpeedPollResult" and gen["type"] == "FluxKontextMaxGenerate"
        out[str(node["id"])] = (gen["widgets_values"][4], node["widgets_values"][0])
    return out


def test_side_by_side_runs_every_chain_concurrently_and_saves_the_right_sizes(
    comfy_server: ComfyServer, comfy_object_info: dict[str, Any], wavespeed_emulator: Emulator
) -> None:
    wavespeed_emulator.configure(inference_s=INFERENCE_S)
    workflow = load_workflow(WORKFLOW)
    chains = _chains(workflow)
    ratios = sorted(ratio for ratio, _ in chains.values())
    assert len(chains) == 4 and len(set(ratios)) == 4, ratios
    assert all(prefix.startswith("wavespeed/side_by_side/") for _, prefix in chains.values())

    result = run_prompt(comfy_server, ui_to_api(workflow, comfy_object_info), timeout=90)
    assert result.ok, result.error_line()

    saved: dict[str, Path] = {}
    for node_id, (ratio, prefix) in chains.items():
        (item,) = result.outputs[node_id]["images"]
        assert f"{item['subfolder']}/{item['filename']}".startswith(prefix + "_")
        path = comfy_server.output_dir / item["subfolder"] / item["filename"]
        with Image.open(path) as img:
            assert img.size == size_for_aspect_ratio(ratio), (prefix, img.size)
        saved[ratio] = path

    # all four tasks were in flight before the first finished (the emulator's event order proves the
    # overlap; no wall-time assertion: a loaded machine must not fail it, and timings live in bench/)
    submits = sorted(r.t for r in wavespeed_emulator.requests if r.route == "submit")
    downloads = sorted(r.t for r in wavespeed_emulator.requests if r.route == "download")
    assert len(submits) == 4 and len(downloads) == 4
    assert submits[-1] < downloads[0]

    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        write_thumbnail(saved, THUMBNAIL)


def test_side_by_side_is_listed_as_a_template_with_its_thumbnail(comfy_server: ComfyServer) -> None:
    templates = requests.get(comfy_server.url + "/workflow_templates", timeout=10).json()
    assert STEM in templates[PACK_NAME]
    base = f"{comfy_server.url}/api/workflow_templates/{PACK_NAME}/{STEM}"
    assert requests.get(base + ".json", timeout=10).json()["nodes"]
    thumb = requests.get(base + ".jpg", timeout=10)
    assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
    assert len(thumb.content) < 60_000


def write_thumbnail(images: dict[str, Path], out: Path, cell: int = 256) -> None:
    """A 2x2 collage of the saved images (each fitted into its cell, labelled with its ratio), < 60 KB."""
    sheet = Image.new("RGB", (2 * cell, 2 * cell), (24, 26, 30))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=20)
    for i, ratio in enumerate(sorted(images, key=lambda r: -eval_ratio(r))):
        with Image.open(images[ratio]) as img:
            tile = img.convert("RGB")
        tile.thumbnail((cell - 12, cell - 12))
        x0, y0 = (i % 2) * cell, (i // 2) * cell
        sheet.paste(tile, (x0 + (cell - tile.width) // 2, y0 + (cell - tile.height) // 2))
        draw.text(
            (x0 + 10, y0 + 8), ratio, fill=(255, 255, 255), font=font, stroke_width=2, stroke_fill=(0, 0, 0)
        )
    sheet.save(out, "JPEG", quality=80, optimize=True)
    assert out.stat().st_size < 60_000


def eval_ratio(ratio: str) -> float:
    w, h = ratio.split(":")
    return float(w) / float(h)
