"""Every shipped template as an artist meets it: in the Templates dialog by its title, opened, run.

ComfyUI lists a custom node pack's templates by file name (``/workflow_templates``: the names of
``example_workflows/*.json`` without the extension), and the frontend (1.49.6 and 1.32.9) shows that
name as the card's title, with the ``.jpg`` of the same name as its thumbnail: so the files are named
as titles ("Text to image - Kontext [max]", short enough to show whole on a card). For each one, in
Debian's chromium: open Templates -> Extensions -> the pack, find the card by its visible title (not
cut), check its thumbnail loads, open it (readable: a zoom of at least 0.75 and no node off the
canvas, on a 1480x900 window), press Run, and wait until every image node shows its image (served by
/view); the saved files exist.

UPDATE_SCREENSHOTS=1 also rewrites each template's thumbnail from that run (< 60 KB): the images the
graph shows, left to right (input, steps, result), or a grid for one batch. The side-by-side
thumbnail is written by tests/e2e/test_side_by_side.py (a collage labelled with the ratios).
Skipped when chromium or playwright is missing, but fails instead when CI=true.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image, ImageDraw

from emulator import Emulator
from scripts.comfy_harness import PACK_NAME, ComfyServer
from scripts.pack_loader import REPO_ROOT
from tests.support.browser import CLOSE_DIALOG, TEMPLATES_BUTTON, VIEWPORT, comfy_ui

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]

WORKFLOWS = sorted((REPO_ROOT / "example_workflows").glob("*.json"))
TITLES = [p.stem for p in WORKFLOWS]
THUMBNAIL_MAX_BYTES = 60_000
THUMBNAIL_WRITTEN_ELSEWHERE = {"Side by side - Kontext [max]"}  # test_side_by_side.py

# every node showing images (LoadImage, previews, SaveImage), left to right: [x, y, [src, w, h]...]
SHOWN = """() => app.graph._nodes.filter((n) => n.imgs && n.imgs.length)
  .map((n) => [n.pos[0], n.pos[1], n.comfyClass, n.imgs.map((i) => [i.src, i.complete ? i.naturalWidth : 0, i.naturalHeight])])
  .sort((a, b) => a[0] - b[0] || a[1] - b[1])"""

# how the template opened: the canvas zoom, and every node's screen box (title bar included) against
# the canvas's visible box
OPENED_VIEW = """() => { const r = app.canvas.canvas.getBoundingClientRect(), ds = app.canvas.ds;
  const box = (n) => { const [x, y] = [(n.pos[0] + ds.offset[0]) * ds.scale + r.left, (n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT + ds.offset[1]) * ds.scale + r.top];
    return [n.title, x, y, x + n.size[0] * ds.scale, y + (n.size[1] + LiteGraph.NODE_TITLE_HEIGHT) * ds.scale]; };
  return { scale: ds.scale, canvas: [r.left, r.top, r.right, r.bottom], nodes: app.graph._nodes.map(box) }; }"""
READABLE_SCALE = 0.75  # labels of 14 px read at 10 px or more; ComfyUI stops drawing them below 0.6

# the whole graph on screen, as an artist looks at the result
FIT_VIEW = """() => { const ns = app.graph._nodes, r = app.canvas.canvas.getBoundingClientRect();
  const x0 = Math.min(...ns.map((n) => n.pos[0])), y0 = Math.min(...ns.map((n) => n.pos[1])) - 40;
  const x1 = Math.max(...ns.map((n) => n.pos[0] + n.size[0])), y1 = Math.max(...ns.map((n) => n.pos[1] + n.size[1]));
  const scale = Math.min(1, 0.9 * Math.min(r.width / (x1 - x0), r.height / (y1 - y0)));
  app.canvas.ds.scale = scale; app.canvas.ds.offset = [90 / scale - x0, 60 / scale - y0];
  app.canvas.setDirty(true, true); }"""


@pytest.fixture(scope="module")
def page(chromium: Path, comfy_server: ComfyServer) -> Iterator[Any]:
    """The ComfyUI page in a fresh chromium profile, on the session server."""
    with comfy_ui(comfy_server, chromium) as ui:
        yield ui.page


def _open_our_templates(page: Any) -> Any:
    """Templates -> Extensions -> the pack (a first-run Templates dialog is closed first)."""
    dialog = page.get_by_role("dialog")
    page.wait_for_timeout(500)  # a first-run dialog opens on its own, shortly after load
    if dialog.count():
        dialog.locator(CLOSE_DIALOG).first.click()
        dialog.wait_for(state="hidden", timeout=10_000)
    page.locator(TEMPLATES_BUTTON).first.click()
    dialog.wait_for(timeout=20_000)
    dialog.get_by_text(PACK_NAME, exact=True).click()
    return dialog


@pytest.mark.parametrize("title", TITLES)
def test_each_template_is_found_by_its_title_opened_and_run(
    page: Any, comfy_server: ComfyServer, wavespeed_emulator: Emulator, title: str
) -> None:
    workflow = json.loads((REPO_ROOT / "example_workflows" / f"{title}.json").read_text(encoding="utf-8"))
    dialog = _open_our_templates(page)

    # the card an artist reads: its visible title, and the thumbnail of the same name loaded
    heading = dialog.get_by_text(title, exact=True).first
    heading.wait_for(timeout=10_000)
    assert heading.is_visible()
    card = dialog.get_by_test_id(f"template-workflow-{title}")
    assert title in card.inner_text().splitlines()  # its title line (1.49.6 adds a "Node graph" tag)
    # ... shown whole, not cut with an ellipsis ("Batch of prompts - FLUX.1 Kontext…" was)
    boxes = page.evaluate(
        """(t) => Array.from(document.querySelectorAll(`[data-testid="template-workflow-${t}"] *`))
             .filter((e) => e.children.length === 0 && e.textContent.trim() === t)
             .map((e) => [e.scrollWidth, e.clientWidth, e.scrollHeight, e.clientHeight])""",
        title,
    )
    assert boxes and all(sw <= cw and sh <= ch for sw, cw, sh, ch in boxes), (title, boxes)
    # the card shows our thumbnail (the frontend hands it over as a blob: URL, so compare sizes; a card
    # whose thumbnail is missing shows some other picture)
    thumbnail = REPO_ROOT / "example_workflows" / f"{title}.jpg"
    update = os.environ.get("UPDATE_SCREENSHOTS") == "1"
    size = [-1, -1]  # (with UPDATE_SCREENSHOTS=1 a new template's first thumbnail is made below)
    if thumbnail.exists() or not update:
        with Image.open(thumbnail) as thumb:
            size = list(thumb.size)
    page.wait_for_function(
        """([t, size]) => size[0] < 0 || Array.from(document.querySelectorAll(`[data-testid="template-workflow-${t}"] img`))
             .some((i) => i.complete && i.naturalWidth === size[0] && i.naturalHeight === size[1])""",
        arg=[title, size],
        timeout=10_000,
    )
    page.screenshot(path=str(_shots() / "templates_dialog.png"))
    heading.click()
    dialog.wait_for(state="hidden", timeout=10_000)
    want = sorted(n["type"] for n in workflow["nodes"])
    page.wait_for_function(
        "(w) => JSON.stringify(app.graph._nodes.map((n) => n.comfyClass || n.type).sort()) === JSON.stringify(w)",
        arg=want,
        timeout=20_000,
    )

    # it opens readable: labels at a readable zoom, no node off the canvas (or under the side bar)
    page.wait_for_timeout(300)  # a frontend that fits the view does it right after loading
    view = page.evaluate(OPENED_VIEW)
    page.screenshot(path=str(_shots() / f"template_{TITLES.index(title)}_opened.png"))
    assert view["scale"] >= READABLE_SCALE, (title, view["scale"])
    left, top, right, bottom = view["canvas"]
    off = [n[0] for n in view["nodes"] if n[1] < left or n[2] < top or n[3] > right or n[4] > bottom]
    assert off == [], (title, off, view)

    # Run, as the artist does, and wait for every Save Image node to show its images
    page.mouse.move(5, VIEWPORT["height"] - 5)
    run = page.get_by_test_id("queue-button")  # 1.49.6: "Run" also names its menu
    (run if run.count() else page.get_by_role("button", name="Run", exact=True)).click()
    saves = sum(1 for n in workflow["nodes"] if n["type"] == "SaveImage")
    page.evaluate(FIT_VIEW)  # (1.32.9 gives a node its images only once the node is drawn)
    page.wait_for_function(
        f"""() => {{ const s = ({SHOWN})().filter((n) => n[2] === 'SaveImage');
             return s.length === {saves} && s.every((n) => n[3].every((i) => i[1] > 0)); }}""",
        timeout=90_000,
    )
    shown = page.evaluate(SHOWN)
    saved = [img for node in shown if node[2] == "SaveImage" for img in node[3]]
    for src, width, height in saved:
        with Image.open(io.BytesIO(requests.get(src, timeout=10).content)) as img:
            assert img.size == (width, height)
    if any(n["type"] == "FluxKontextMaxBatch" for n in workflow["nodes"]):
        prompts, variations = workflow["nodes"][0]["widgets_values"][:2]
        assert len(saved) == len(prompts.splitlines()) * variations  # one batch: every image shown
    page.wait_for_timeout(300)
    page.screenshot(path=str(_shots() / f"template_{TITLES.index(title)}.png"))

    if update and title not in THUMBNAIL_WRITTEN_ELSEWHERE:
        images = [Image.open(io.BytesIO(requests.get(i[0], timeout=10).content)) for n in shown for i in n[3]]
        write_thumbnail(images, grid=len(shown) == 1, out=thumbnail)


def test_the_listing_serves_every_template_and_thumbnail_by_its_title(comfy_server: ComfyServer) -> None:
    """The route and the static files take titles with spaces, dots and brackets (URL-encoded)."""
    listed = requests.get(comfy_server.url + "/workflow_templates", timeout=10).json()[PACK_NAME]
    assert sorted(listed) == TITLES
    for title in TITLES:
        base = f"{comfy_server.url}/api/workflow_templates/{PACK_NAME}/{requests.utils.quote(title)}"
        assert requests.get(base + ".json", timeout=10).json()["nodes"]
        thumb = requests.get(base + ".jpg", timeout=10)
        assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8", title
        assert len(thumb.content) < THUMBNAIL_MAX_BYTES, title


def _shots() -> Path:
    path = REPO_ROOT / "artifacts" / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_thumbnail(images: list[Image.Image], grid: bool, out: Path, cell: int = 200) -> None:
    """The run's images in a row with arrows between them (a chain), or 2 columns (one batch); one
    image as it is (scaled down)."""
    if len(images) == 1:
        (image,) = images
        image = image.convert("RGB")
        image.thumbnail((2 * cell, 2 * cell))
        image.save(out, "JPEG", quality=80, optimize=True)
        return
    gap, cols = 28, (min(2, len(images)) if grid else len(images))
    rows = -(-len(images) // cols)
    sheet = Image.new("RGB", (cols * cell + (cols - 1) * gap, rows * cell + (rows - 1) * gap), (24, 26, 30))
    draw = ImageDraw.Draw(sheet)
    for i, image in enumerate(images):
        tile = image.convert("RGB")
        tile.thumbnail((cell, cell))
        x, y = (i % cols) * (cell + gap), (i // cols) * (cell + gap)
        sheet.paste(tile, (x + (cell - tile.width) // 2, y + (cell - tile.height) // 2))
        if not grid and i:
            ax, ay = x - gap + 8, y + cell // 2
            draw.polygon([(ax, ay - 9), (ax, ay + 9), (ax + 12, ay)], fill=(210, 214, 222))
    sheet.save(out, "JPEG", quality=80, optimize=True)
    assert out.stat().st_size < THUMBNAIL_MAX_BYTES


def test_nodes_of_one_kind_in_a_template_have_titles_of_their_own() -> None:
    """Four Poll Result nodes all titled "WaveSpeed Poll Result" could not be told apart: every node
    that shares its kind with another in the same template carries a distinct title."""
    for path in WORKFLOWS:
        nodes = json.loads(path.read_text(encoding="utf-8"))["nodes"]
        kinds = [n["type"] for n in nodes]
        shared = [n for n in nodes if kinds.count(n["type"]) > 1]
        titles = [n.get("title") for n in shared]
        assert None not in titles and len(set(titles)) == len(titles), (path.stem, titles)
