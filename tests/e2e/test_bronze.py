"""A new user's account in a real ComfyUI: the side-by-side template on an emulated Bronze account
(2 images a minute, 2 at once; the minute scaled down to MINUTE_S for the test).

Its own ComfyUI and emulator (module scope): the account's scheduler lives in the ComfyUI process
and learns the limit, which must not leak into the session server's other tests.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wavespeed_kontext_pack.wavespeed.net.client import WaveSpeedClient

from emulator import Emulator
from scripts.comfy_harness import ComfyServer, load_workflow, run_prompt, ui_to_api
from scripts.pack_loader import REPO_ROOT
from tests.support.graphs import batch_graph

WORKFLOW = REPO_ROOT / "example_workflows" / "Side by side - Kontext [max].json"
# What a 429 shown as an error would look like. Not a bare "429": task ids are 32 hex characters, and
# one in a few hundred contains "429" (a false failure seen once in a cold CI run).
_SHOWS_429_AS_ERROR = re.compile(r"HTTP 429|\b429\b(?![0-9a-f])|rate limit hit", re.IGNORECASE)
MINUTE_S = 10.0  # long enough that the four submits land in one window even on a slow first run


@pytest.fixture(scope="module")
def bronze_minute_s() -> float:
    return MINUTE_S


@pytest.fixture(scope="module")
def bronze_server(comfy_installed: Path, bronze_env: dict[str, str]) -> Iterator[ComfyServer]:
    with ComfyServer(
        env=bronze_env, cache_none=True, keep_dir=os.environ.get("COMFY_E2E_KEEP") == "1"
    ) as server:
        yield server


def test_side_by_side_on_bronze_completes_every_chain_with_one_submission_each(
    bronze_server: ComfyServer, bronze: Emulator
) -> None:
    bronze.configure(tier="bronze", minute_s=MINUTE_S)  # the first window starts now
    workflow = load_workflow(WORKFLOW)
    prompt: dict[str, Any] = ui_to_api(workflow, bronze_server.object_info())
    result = run_prompt(bronze_server, prompt, timeout=150)
    assert result.ok, result.error_line()
    saved = [n for n, out in result.outputs.items() if out.get("images")]
    assert len(saved) == 4
    submits = [(round(r.t, 2), r.status) for r in bronze.requests if r.route == "submit"]
    assert bronze.submissions == 4, submits  # exactly one accepted submission per image
    assert bronze.rate_limited >= 1, submits  # the account's limit was really hit ...
    texts = [e["data"]["text"] for e in result.events_of("progress_text")]
    # ... and shown as waiting, never as an error
    if "retry_rate_limit" in inspect.signature(WaveSpeedClient.submit).parameters:
        assert any("waiting for WaveSpeed's rate limit, resets in ~" in t for t in texts), texts
    assert not [t for t in texts if _SHOWS_429_AS_ERROR.search(t)], texts


def test_a_batch_of_six_variations_on_bronze_completes_with_one_submission_each(
    bronze_server: ComfyServer, bronze: Emulator
) -> None:
    bronze.reset()
    bronze.configure(tier="bronze", minute_s=MINUTE_S)
    prompts = "a lighthouse on a cliff at dusk, oil painting"
    prompt = batch_graph(prompts, 6, 4242, filename_prefix="wavespeed/batch")
    result = run_prompt(bronze_server, prompt, timeout=150)
    assert result.ok, result.error_line()
    assert len(result.outputs["2"]["images"]) == 6
    assert bronze.submissions == 6  # exactly one accepted submission per image
    texts = [e["data"]["text"] for e in result.events_of("progress_text")]
    assert any("batch of 6 · $0.48" in t for t in texts), texts  # the price before it is spent
    if "retry_rate_limit" in inspect.signature(WaveSpeedClient.submit).parameters:
        assert any("waiting for WaveSpeed's rate limit" in t for t in texts) or bronze.rate_limited == 0
    assert not [t for t in texts if _SHOWS_429_AS_ERROR.search(t)], texts
