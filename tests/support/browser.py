"""Driving the real ComfyUI frontend in Debian's chromium through Playwright: the browser, a fresh
profile per page, the page helpers installed once the app is up, and the `UI` handle the tests use.
Never runs `playwright install`: chromium comes from apt (CHROMIUM_PATH to use another)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.comfy_harness import ComfyServer
from scripts.pack_loader import REPO_ROOT
from tests.support.ci import unavailable

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1480, "height": 900}
SHOTS = REPO_ROOT / "artifacts" / "screenshots"
# selectors that differ between frontends: 1.32.9 (ComfyUI 0.3.75) first, then 1.49.6 (0.33.0)
CLOSE_DIALOG = "button:has(i.pi-times), button[aria-label='Close dialog']"
TEMPLATES_BUTTON = "button.templates-tab-button, button[aria-label='Templates']"
APP_READY = "window.app && window.app.graph && window.app.canvas"

# helpers installed in the page once the app is up
PAGE_HELPERS = """() => {
  window.__wsk = {
    node: (cls) => app.graph._nodes.find((n) => n.comfyClass === cls),
    widget: (cls, name) => (window.__wsk.node(cls).widgets || []).find((w) => w.name === name),
    status: (cls) => {
      const w = window.__wsk.widget(cls, "$$node-text-preview");
      return w ? String(w.value ?? "") : null;
    },
    toScreen: (gx, gy) => {
      const r = app.canvas.canvas.getBoundingClientRect();
      const ds = app.canvas.ds;
      return [r.left + (gx + ds.offset[0]) * ds.scale, r.top + (gy + ds.offset[1]) * ds.scale];
    },
  };
}"""

# the texts of a node's badges (the price badge among them)
BADGE_TEXTS = """(cls) => (window.__wsk.node(cls).badges || [])
  .map((b) => (typeof b === "function" ? b() : b)).map((b) => String(b?.text ?? ""))"""


def require_chromium() -> Path:
    """Debian's chromium, once the playwright package is known to be there (else skip; fail in CI)."""
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("the playwright Python package is not installed")
    return CHROMIUM


@dataclass
class UI:
    """One ComfyUI page and what it logged: page errors, console errors, our scripts' HTTP statuses."""

    page: Any
    server: ComfyServer
    first_run_dialog: bool
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    script_status: dict[str, int] = field(default_factory=dict)

    def shot(self, name: str, **kw: Any) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / name
        self.page.screenshot(path=str(path), **kw)
        return path

    def js(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def status(self, cls: str) -> str | None:
        return self.js("(c) => window.__wsk.status(c)", cls)

    def set_widget(self, cls: str, name: str, value: Any) -> None:
        self.js(
            "([c, n, v]) => { window.__wsk.widget(c, n).value = v; app.graph.setDirtyCanvas(true, true); }",
            [cls, name, value],
        )

    def run(self) -> None:
        """Press the Run button of the action bar (what a user does), away from any tooltip."""
        self.page.mouse.move(5, VIEWPORT["height"] - 5)
        by_test_id = self.page.get_by_test_id("queue-button")  # 1.49.6: "Run" also names its menu
        if by_test_id.count():
            by_test_id.click()
        else:
            self.page.get_by_role("button", name="Run", exact=True).click()

    def listen(self) -> None:
        """Record the page's errors and the status of every extension script it loads."""
        self.page.on("pageerror", lambda exc: self.page_errors.append(f"{exc}\n{getattr(exc, 'stack', '')}"))
        self.page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        self.page.on(
            "response",
            lambda r: self.script_status.__setitem__(r.url, r.status) if "/extensions/" in r.url else None,
        )


@contextlib.contextmanager
def comfy_ui(server: ComfyServer, chromium: Path) -> Iterator[UI]:
    """The ComfyUI page of ``server`` in a fresh chromium profile, listened to from the start, once
    the app is up and PAGE_HELPERS are installed. The "Nodes 2.0" banner (it only covers the canvas
    in screenshots) is dismissed; a first-run Templates dialog is left to the caller."""
    from playwright.sync_api import sync_playwright

    first_run = not server.get_json("/settings/Comfy.TutorialCompleted")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True, viewport=VIEWPORT
            )
            try:
                context.add_init_script("localStorage.setItem('vueNodesBannerDismissed', 'true')")
                page = context.pages[0] if context.pages else context.new_page()
                ui = UI(page=page, server=server, first_run_dialog=first_run)
                ui.listen()
                page.goto(server.url)
                page.wait_for_function(APP_READY, timeout=60_000)
                ui.js(PAGE_HELPERS)
                yield ui
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
