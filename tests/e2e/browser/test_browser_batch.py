"""The Batch node in the real ComfyUI frontend, driven in Debian's chromium through Playwright.

One page for the module, on the session ComfyUI server and emulator (see conftest.py and
tests/e2e/browser/test_browser.py, whose helpers this reuses):
  * a Batch of 4 (2 prompts x 2 variations) feeding a Save Image node, queued with the Run button:
    its badge reads the price of what is sent, $0.32 (on every frontend: the pack's web extension), the
    emulator charges exactly that, and Save Image shows the 4 images;
  * images as they arrive: one task finishes while the other three are held at the emulator; the Batch
    node then shows that image as its preview (a loaded, non-blank picture on the node) and the status
    line "1/4 done, $0.08 so far"; a screenshot cropped to the node is checked (the preview's pixels are
    in it) and kept as docs/screenshots/batch_preview_mid_run.png (written when UPDATE_SCREENSHOTS=1
    or when it is missing); then the three are released and the run ends with all four images.
Everything waits on page state, never on a fixed sleep.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emulator import Emulator
from scripts.comfy_harness import ComfyServer
from scripts.pack_loader import REPO_ROOT
from tests.support.browser import BADGE_TEXTS, CLOSE_DIALOG, UI, VIEWPORT, comfy_ui

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

BATCH, SAVE = "FluxKontextMaxBatch", "SaveImage"
PROMPTS = "a red fox in fresh snow\na blue jay on a pine branch"
MID_RUN_SHOT = REPO_ROOT / "docs" / "screenshots" / "batch_preview_mid_run.png"
MID_RUN_SHOT_MAX_BYTES = 200_000

BUILD_GRAPH = """() => {
  app.graph.clear();
  const batch = LiteGraph.createNode('FluxKontextMaxBatch');
  batch.pos = [40, 40];
  app.graph.add(batch);
  const save = LiteGraph.createNode('SaveImage');
  save.pos = [40 + batch.size[0] + 60, 40];
  app.graph.add(save);
  batch.connect(0, save, 0);
  app.canvas.ds.scale = 1; app.canvas.ds.offset = [40, 140];
  app.graph.setDirtyCanvas(true, true);
  return [batch.id, save.id];
}"""

# the node's preview as the canvas holds it: a loaded <img> made from the websocket's blob
PREVIEW_STATE = """(cls) => {
  const n = window.__wsk.node(cls);
  const img = (n.imgs || [])[0];
  if (!img || !img.complete || !img.naturalWidth) return null;
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let sum = 0, sq = 0, k = 0;
  for (let i = 0; i < d.length; i += 4) { const v = (d[i] + d[i + 1] + d[i + 2]) / 3; sum += v; sq += v * v; k++; }
  const mean = sum / k;
  return { src: img.src, width: img.naturalWidth, height: img.naturalHeight, std: Math.sqrt(sq / k - mean * mean),
           previews: (app.nodePreviewImages || {})[String(n.id)] || null };
}"""


# the placeholder bar frontends 1.49.6 and 1.58.1 show beside a running node's status line
SKELETON = ".dom-widget .p-skeleton, .dom-widget [data-testid='skeleton']"
# the height of the Batch's prompt box (the <textarea> holding the prompts)
PROMPT_BOX_HEIGHT = """(text) => { const t = Array.from(document.querySelectorAll('textarea')).find((e) => e.value === text);
  return t ? t.getBoundingClientRect().height / app.canvas.ds.scale : -1; }"""


@pytest.fixture(scope="module")
def bui(chromium: Path, comfy_server: ComfyServer) -> Iterator[UI]:
    """A fresh chromium profile on the session server with the app up (the first-run Templates
    dialog closed when it shows, as test_browser.py does)."""
    comfy_server.post_json("/settings/Comfy.Minimap.Visible", False)
    with comfy_ui(comfy_server, chromium) as ui:
        if ui.first_run_dialog:
            dialog = ui.page.get_by_role("dialog")
            dialog.wait_for(timeout=20_000)
            dialog.locator(CLOSE_DIALOG).first.click()
            dialog.wait_for(state="hidden", timeout=10_000)
        yield ui


def _load_batch_of_4(ui: UI) -> None:
    """Batch (2 prompts x 2 variations, a seed this session has not rendered) -> Save Image."""
    ui.js(BUILD_GRAPH)
    ui.set_widget(BATCH, "prompts", PROMPTS)
    ui.set_widget(BATCH, "variations", 2)
    ui.set_widget(BATCH, "seed", random.randrange(1, 2**30))
    ui.set_widget(BATCH, "control_after_generate", "fixed")
    ui.set_widget(BATCH, "aspect_ratio", "1:1")


def _wait_for_saved_images(ui: UI, count: int) -> list[list[int]]:
    ui.page.wait_for_function(
        """(n) => { const s = window.__wsk.node('SaveImage');
                   return s.imgs && s.imgs.length === n && s.imgs.every((i) => i.complete && i.naturalWidth > 0); }""",
        arg=count,
        timeout=60_000,
    )
    sizes: list[list[int]] = ui.js(
        "() => window.__wsk.node('SaveImage').imgs.map((i) => [i.naturalWidth, i.naturalHeight])"
    )
    return sizes


def test_batch_of_4_runs_from_the_run_button_at_the_price_its_badge_shows(
    bui: UI, wavespeed_emulator: Emulator
) -> None:
    _load_batch_of_4(bui)
    bui.page.wait_for_function(f"() => ({BADGE_TEXTS})({BATCH!r}).includes('$0.32/Run')", timeout=10_000)
    before = wavespeed_emulator.balance
    bui.run()
    sizes = _wait_for_saved_images(bui, 4)
    assert sizes == [[1024, 1024]] * 4
    assert wavespeed_emulator.submissions == 4
    assert before - wavespeed_emulator.balance == pytest.approx(0.32)  # what the badge said
    bui.page.wait_for_function(
        "() => (window.__wsk.status('FluxKontextMaxBatch') || '').startsWith('batch done · 4/4')",
        timeout=10_000,
    )
    bui.shot("batch_1_after_run.png")


def test_batch_node_shows_the_first_image_while_later_tasks_wait(
    bui: UI, wavespeed_emulator: Emulator
) -> None:
    emu = wavespeed_emulator
    emu.next_tasks(1, inference_s=0.2)
    emu.next_tasks(3, never_finish=True)  # held until the screenshot is taken
    _load_batch_of_4(bui)
    bui.js("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")  # laid out
    box_before = bui.js(PROMPT_BOX_HEIGHT, PROMPTS)
    try:
        bui.run()
        bui.page.wait_for_function(
            f"() => {{ const p = ({PREVIEW_STATE})({BATCH!r}); return p && p.previews &&"
            " (window.__wsk.status('FluxKontextMaxBatch') || '').startsWith('1/4 done, $0.08 so far'); }",
            timeout=60_000,
        )
        state = bui.js(PREVIEW_STATE, BATCH)
        # (the frontend may hand the same frame out under two blob URLs: one per preview event kind)
        assert state["src"].startswith("blob:") and state["previews"], state
        assert max(state["width"], state["height"]) <= 512 and state["std"] > 5, state
        held = [t for t in emu.history() if t.never_finish]
        assert len(held) == 3  # later tasks are still waiting
        assert (bui.status(BATCH) or "").startswith("1/4 done, $0.08 so far")
        # the node's bar follows the count (ComfyUI 0.33 once dropped it right after a preview)
        bui.page.wait_for_function(
            f"() => (window.__wsk.node({BATCH!r}).progress ?? 0) >= 0.27", timeout=10_000
        )
        # the prompt box keeps its height beside the preview (it shrank to two lines)
        bui.page.wait_for_function(
            f"([t, h]) => Math.abs(({PROMPT_BOX_HEIGHT})(t) - h) <= 3",
            arg=[PROMPTS, box_before],
            timeout=10_000,
        )
        # the bar beside "1/4 done" (frontends 1.49+ show one while a node runs; 1.32.9 none) shows
        # the node's progress, not an empty placeholder
        if not _frontend_searches_names_only(bui):
            bui.page.wait_for_function(
                f"""() => Array.from(document.querySelectorAll({SKELETON!r}))
                     .some((b) => Number(b.dataset.wavespeedProgress) >= 25)""",
                timeout=10_000,
            )
        bui.page.mouse.move(5, VIEWPORT["height"] - 5)
        bui.js("() => app.graph.setDirtyCanvas(true, true)")
        bui.js("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")  # drawn
        shot = bui.shot("batch_2_preview_mid_run.png", clip=_node_clip(bui, BATCH))
        _check_shot(shot)
        _keep_for_docs(shot)
    finally:
        for task in emu.history():
            if task.never_finish:
                task.inference_s, task.never_finish = 0.0, False
    _wait_for_saved_images(bui, 4)
    assert emu.submissions == 4


def _node_clip(ui: UI, cls: str) -> dict[str, float]:
    """The node on screen, title bar and the badges above it included, with a small margin."""
    x0, y0, x1, y1 = ui.js(
        """(c) => { const n = window.__wsk.node(c);
                   const a = window.__wsk.toScreen(n.pos[0], n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT);
                   const b = window.__wsk.toScreen(n.pos[0] + n.size[0], n.pos[1] + n.size[1]);
                   return [a[0], a[1], b[0], b[1]]; }""",
        cls,
    )
    pad, badges = 10, 28
    x, y = max(0.0, x0 - pad), max(0.0, y0 - pad - badges)
    return {
        "x": x,
        "y": y,
        "width": min(VIEWPORT["width"] - x, x1 - x0 + 2 * pad),
        "height": min(VIEWPORT["height"] - y, y1 - y + pad),
    }


def _check_shot(shot: Path) -> None:
    """The screenshot holds the preview: a region of the emulator's picture, not the node's flat
    background and widgets. The emulator paints colourful patterns; the node is grey."""
    with Image.open(shot) as img:
        rgb = np.asarray(img.convert("RGB"), dtype=np.int16)
    saturation = rgb.max(axis=2) - rgb.min(axis=2)
    colourful_rows = int((saturation > 40).sum(axis=1).astype(bool).sum())
    assert colourful_rows > rgb.shape[0] // 4, (colourful_rows, rgb.shape)


def _keep_for_docs(shot: Path) -> None:
    if MID_RUN_SHOT.exists() and os.environ.get("UPDATE_SCREENSHOTS") != "1":
        return
    MID_RUN_SHOT.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(shot) as img:
        img.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(
            MID_RUN_SHOT, optimize=True
        )
    assert MID_RUN_SHOT.stat().st_size < MID_RUN_SHOT_MAX_BYTES


SAVED_WITH_SEED_MODE = REPO_ROOT / "tests" / "fixtures" / "batch_saved_with_seed_mode.json"


def test_a_batch_workflow_saved_with_seed_mode_loads_with_the_same_values(bui: UI) -> None:
    """One seed control on Batch: ``seed_mode`` is gone, yet a workflow saved with it (widgets_values
    are positional) loads with every value in its place; "random" becomes seed -1 (the API picks).
    It was saved before the model widget too: that one keeps its default, [max]."""
    import json

    workflow = json.loads(SAVED_WITH_SEED_MODE.read_text(encoding="utf-8"))
    bui.js("async (w) => { await app.loadGraphData(w); }", workflow)
    values = bui.js(
        """() => app.graph._nodes.filter((n) => n.comfyClass === 'FluxKontextMaxBatch').sort((a, b) => a.id - b.id)
             .map((n) => Object.fromEntries(n.widgets.map((w) => [w.name, w.value])))"""
    )
    first, second = (workflow["nodes"][0]["widgets_values"], workflow["nodes"][2]["widgets_values"])
    assert [v.get("seed_mode") for v in values] == [None, None]
    assert values[0] == {
        "prompts": first[0], "variations": 2, "seed": 42, "control_after_generate": "fixed",
        "guidance_scale": 3.5, "aspect_ratio": "1:1", "on_failure": "return what succeeded", "timeout_s": 1800,
        "model": "FLUX.1 Kontext [max]",
    }  # fmt: skip
    assert values[1] == {
        "prompts": second[0], "variations": 3, "seed": -1, "control_after_generate": "increment",
        "guidance_scale": 6.5, "aspect_ratio": "16:9", "on_failure": "fail", "timeout_s": 600,
        "model": "FLUX.1 Kontext [max]",
    }  # fmt: skip
    saved = bui.js("() => app.graph.serialize().nodes.find((n) => n.id === 1).widgets_values")
    assert saved == [
        first[0],
        2,
        42,
        "fixed",
        3.5,
        "1:1",
        "return what succeeded",
        1800,
        "FLUX.1 Kontext [max]",
    ]


DISPLAY_NAMES = [
    "FLUX.1 Kontext [max] Generate (WaveSpeed)",
    "FLUX.1 Kontext [max] Edit (WaveSpeed)",
    "FLUX.1 Kontext [max] Multi-Reference (WaveSpeed)",
    "FLUX.1 Kontext [max] Batch (WaveSpeed)",
    "WaveSpeed Poll Result",
    "WaveSpeed Recent Tasks",
    "WaveSpeed Connection Check",
]


@pytest.mark.parametrize("query", ["kontext", "wavespeed"])
def test_the_node_search_finds_every_node_of_the_pack(bui: UI, query: str) -> None:
    """Double-click the canvas, type the word: every node of the pack is offered (Poll Result too, which
    every chain needs), by the search_aliases ComfyUI 0.33.0 serves (the extension adds them where a
    server does not). Frontend 1.32.9 (ComfyUI 0.3.75) never reads search_aliases and ranks a word
    found past ~30 characters of a name out, so there "kontext" misses Poll Result and Recent Tasks
    and "wavespeed" misses Generate and Multi-Reference: a limit of that frontend, not tested."""
    if _frontend_searches_names_only(bui):
        pytest.xfail("frontend 1.32.9 searches node names only, never search_aliases")
    bui.js("() => app.graph.clear()")
    _open_node_search(bui)
    bui.page.keyboard.type(query)
    bui.page.wait_for_function(  # the list has followed the query (it shows ours first or last)
        """() => Array.from(document.querySelectorAll('.option-container')).some((e) => /wavespeed/i.test(e.innerText))""",
        timeout=10_000,
    )
    bui.page.wait_for_timeout(500)  # the list settles
    offered = bui.js(
        "() => Array.from(document.querySelectorAll('.option-container')).map((e) => e.innerText.split('\\n')[0].trim())"
    )
    for _ in range(3):  # Escape clears the query, then closes the box
        if not bui.js("() => document.querySelectorAll('.option-container').length"):
            break
        bui.page.keyboard.press("Escape")
        bui.page.wait_for_timeout(300)
    assert [name for name in DISPLAY_NAMES if name not in offered] == [], offered


def _open_node_search(ui: UI) -> None:
    """Double-click the empty canvas until the search box has the focus. In a full e2e run the first
    double-click after the earlier tests was sometimes not taken as one (no box in 10 s, 2 runs of 3);
    Escape and a plain click first put the canvas back in its resting state."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    for _ in range(3):
        ui.page.keyboard.press("Escape")
        ui.page.mouse.click(700, 450)
        ui.page.wait_for_timeout(300)
        ui.page.mouse.dblclick(700, 450)
        try:
            ui.page.wait_for_function("() => document.activeElement?.tagName === 'INPUT'", timeout=5_000)
            return
        except PlaywrightTimeoutError:
            continue
    raise AssertionError("the node search box did not open on a double-click of the empty canvas")


def _frontend_searches_names_only(ui: UI) -> bool:
    """Frontend 1.32.9 (ComfyUI 0.3.75) indexes name and display_name only, never search_aliases."""
    version = ui.js("() => window.__COMFYUI_FRONTEND_VERSION__ || ''")
    return str(version).startswith("1.32.")
