"""Fixtures for end-to-end tests against a real headless ComfyUI (one server for the whole session).

Every test under tests/e2e is marked `e2e` (deselect with `-m "not e2e"`) and gets a default
pytest-timeout. The server runs with --cache-none (a resubmitted graph really runs again) and talks to a
session-scoped WaveSpeed emulator in this pytest process over loopback.

Fixtures:
  comfy_installed    the ComfyUI dir (skip if missing; fail when CI=true)
  comfy_server       session ComfyServer (skips if ComfyUI is not installed; fails instead when CI=true);
                     besides the pack it loads `HarnessSlowNode` (progress text, failure, interrupt)
  comfy_object_info  its /object_info
  e2e_emulator       session Emulator(api_keys=(E2E_API_KEY,), inference_s=0.3) the server points at
  wavespeed_emulator the same emulator, reset (tasks, faults, config) before the test
  bronze             module Emulator of a Bronze account (minute: `bronze_minute_s`), bronze_env for its ComfyUI

Helper: `running(servers)` starts several ComfyUI servers (a module's own, e.g. two sharing a journal).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from scripts.comfy_harness import ComfyNotInstalledError, ComfyServer, ensure_installed
from tests.support.ci import unavailable

E2E_API_KEY = "test-key-0123456789"
BRONZE_KEY = "bronze-key-0123456789"
E2E_TIMEOUT_S = 180
_HERE = Path(__file__).resolve().parent
_CONFIG_KEYS = ("inference_s", "queue_s", "sync_timeout_s", "output_format", "poll_gap_s")
_START_CONFIG: dict[str, Any] = {}  # the e2e emulator's config at creation, restored per test


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark everything in tests/e2e as e2e and give it a timeout unless the test sets its own."""
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(E2E_TIMEOUT_S))


@pytest.fixture(scope="session")
def e2e_api_key() -> str:
    """The key the e2e emulator accepts (ComfyUI gets it as WAVESPEED_API_KEY)."""
    return E2E_API_KEY


@pytest.fixture(scope="session")
def e2e_emulator() -> Iterator[Emulator]:
    """One emulator for the session; short 0.3 s tasks; a check of a task less than 2 s after the
    previous one is a 429 (WaveSpeed's published pace, the emulator's default)."""
    with Emulator(api_keys=(E2E_API_KEY,), inference_s=0.3, poll_gap_s=2.0) as emu:
        _START_CONFIG.clear()
        _START_CONFIG.update({k: getattr(emu, k) for k in _CONFIG_KEYS}, balance=emu.balance)
        yield emu


@pytest.fixture
def wavespeed_emulator(e2e_emulator: Emulator) -> Emulator:
    """The session emulator, reset to its start state (tasks, faults, counters, config) for this test."""
    e2e_emulator.reset()
    e2e_emulator.configure(**_START_CONFIG)
    return e2e_emulator


# A tiny node pack written at session start so the smoke tests can check progress text, errors and
# interrupts through the real server without depending on the WaveSpeed nodes.
HARNESS_NODES_SOURCE = """
import time

import comfy.model_management as mm
import comfy.utils
from server import PromptServer


class HarnessSlowNode:
    CATEGORY = "_for_testing/harness"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "seconds": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 60.0}),
            "fail": ("BOOLEAN", {"default": False}),
        }, "hidden": {"unique_id": "UNIQUE_ID"}}

    def run(self, seconds, fail, unique_id=None):
        steps = max(1, int(seconds / 0.05))
        bar = comfy.utils.ProgressBar(steps)
        for i in range(steps):
            mm.throw_exception_if_processing_interrupted()
            PromptServer.instance.send_progress_text(f"step {i + 1}/{steps}", unique_id)
            bar.update(1)
            time.sleep(0.05)
        if fail:
            raise RuntimeError("harness node failed on purpose")
        return {"ui": {"text": ["done"]}, "result": ("done",)}


NODE_CLASS_MAPPINGS = {"HarnessSlowNode": HarnessSlowNode}
"""


@pytest.fixture(scope="session")
def comfy_installed() -> Path:
    """The ComfyUI dir; skips the test if ComfyUI is missing, but fails under CI=true (bootstrap made it)."""
    try:
        return ensure_installed()
    except ComfyNotInstalledError as exc:
        unavailable(str(exc))


@pytest.fixture(scope="session")
def comfy_server(
    comfy_installed: Path, e2e_emulator: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ComfyServer]:
    """A real ComfyUI (0.33.0, or $COMFYUI_DIR) with the pack, pointed at the e2e emulator, for the session."""
    harness_pack = tmp_path_factory.mktemp("packs") / "harness_test_nodes"
    harness_pack.mkdir()
    (harness_pack / "__init__.py").write_text(HARNESS_NODES_SOURCE, encoding="utf-8")
    env = {"WAVESPEED_BASE_URL": e2e_emulator.base_url, "WAVESPEED_API_KEY": E2E_API_KEY}
    extra_packs = {"harness_test_nodes": harness_pack}
    keep_dir = os.environ.get("COMFY_E2E_KEEP") == "1"
    with ComfyServer(env=env, cache_none=True, extra_packs=extra_packs, keep_dir=keep_dir) as server:
        yield server


@contextlib.contextmanager
def running(servers: list[ComfyServer]) -> Iterator[list[ComfyServer]]:
    """Start the servers one after the other; stop every one of them afterwards, whatever failed."""
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="session")
def comfy_object_info(comfy_server: ComfyServer) -> dict[str, Any]:
    """/object_info of the session server."""
    return comfy_server.object_info()


@pytest.fixture(scope="module")
def bronze_minute_s() -> float:
    """How long the `bronze` account's minute lasts; a module overrides this fixture to scale it down."""
    return 60.0


@pytest.fixture(scope="module")
def bronze(bronze_minute_s: float) -> Iterator[Emulator]:
    """An emulated Bronze account (2 images a minute, 2 at once; 0.5 s tasks) for one module: the
    account's scheduler lives in the ComfyUI process and learns the limit, so a module that uses it
    starts its own ComfyUI (with `bronze_env`) rather than the session server."""
    with Emulator(
        api_keys=(BRONZE_KEY,), inference_s=0.5, tier="bronze", minute_s=bronze_minute_s, poll_gap_s=2.0
    ) as emu:
        yield emu


@pytest.fixture(scope="module")
def bronze_env(bronze: Emulator, bronze_minute_s: float) -> dict[str, str]:
    """The environment that points a ComfyUI at `bronze`, its rate window scaled like the minute."""
    return {
        "WAVESPEED_BASE_URL": bronze.base_url,
        "WAVESPEED_API_KEY": BRONZE_KEY,
        "WAVESPEED_RATE_WINDOW_S": str(bronze_minute_s),
    }
