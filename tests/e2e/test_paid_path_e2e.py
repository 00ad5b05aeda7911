"""The paid path in a real ComfyUI (issue 17 cases 2 and 3), on an emulated Bronze account.

(i) A Batch of 6 (and of 30: more than its 24 tasks in flight), cancelled (POST /interrupt, the UI's Cancel) right after the emulator accepted its
second submit: the emulator accepts no submit of that batch after the Cancel. The order is the
emulator's own event list, and the probe that ends the test is one more prompt through the same
account's first-come-first-served scheduler: a batch task still queued would be submitted before it.
(ii) A fixed-seed prompt already paid, queued again while another process holds the journal's write
lock for 60 s (the server waits 2 s for it, WAVESPEED_JOURNAL_LOCK_WAIT_S): no new submit and one line.

Its own ComfyUI and emulator (module scope): the account's scheduler lives in the ComfyUI process.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from scripts.comfy_harness import ComfyServer, interrupt, run_prompt
from scripts.pack_loader import REPO_ROOT

pytestmark = pytest.mark.timeout(300)

ROOT = REPO_ROOT
LOCK_HOLDER = ROOT / "tests" / "support" / "journal_lock_holder.py"
KEY = "bronze-key-0123456789"
MINUTE_S = 4.0  # Bronze: 2 submits a (scaled) minute


@pytest.fixture(scope="module")
def bronze() -> Iterator[Emulator]:
    emu = Emulator(api_keys=(KEY,), inference_s=0.5, tier="bronze", minute_s=MINUTE_S)
    emu.start(port=0)
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("paid-path-journal")


@pytest.fixture(scope="module")
def server(comfy_installed: Path, bronze: Emulator, journal: Path) -> Iterator[ComfyServer]:
    srv = ComfyServer(
        env={
            "WAVESPEED_BASE_URL": bronze.base_url,
            "WAVESPEED_API_KEY": KEY,
            "WAVESPEED_ACCOUNT_TIER": "bronze",
            "WAVESPEED_RATE_WINDOW_S": str(MINUTE_S),
            "WAVESPEED_JOURNAL_DIR": str(journal),
            "WAVESPEED_JOURNAL_LOCK_WAIT_S": "2",
        },
        cache_none=True,
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _generate(prompt: str, seed: int) -> dict[str, Any]:
    return {
        "g": {
            "class_type": "FluxKontextMaxGenerate",
            "inputs": {
                "prompt": prompt,
                "seed": seed,
                "guidance_scale": 3.5,
                "aspect_ratio": "1:1",
                "sync_mode": False,
                "force_rerun": False,
            },
        },
        "p": {
            "class_type": "WaveSpeedPollResult",
            "inputs": {"task": ["g", 0], "timeout_s": 120, "nsfw_policy": "pass through", "request_id": ""},
        },
        "s": {"class_type": "SaveImage", "inputs": {"images": ["p", 0], "filename_prefix": "e2e/paid"}},
    }


@pytest.mark.parametrize("variations", [6, 30])  # 30: more tasks than the batch's 24 in flight
def test_a_cancelled_batch_submits_nothing_after_the_cancel(
    server: ComfyServer, bronze: Emulator, monkeypatch: pytest.MonkeyPatch, variations: int
) -> None:
    bronze.reset()
    bronze.configure(tier="bronze", minute_s=MINUTE_S)
    events: list[str] = []
    lock = threading.Lock()
    accept = bronze.submit

    def submit(model: str, body: dict[str, Any], base_url: str) -> Any:
        task = accept(model, body, base_url)
        if not isinstance(task, int):
            with lock:
                events.append(f"submit {body.get('prompt')}")
                if len(events) == 2:  # the batch's second accepted submit: press Cancel now
                    interrupt(server)
                    events.append("cancel")
        return task

    monkeypatch.setattr(bronze, "submit", submit)
    batch = {
        "1": {
            "class_type": "FluxKontextMaxBatch",
            "inputs": {
                "prompts": "a cancelled batch",
                "variations": variations,
                "seed": 5151 + variations,
                "seed_mode": "increment",
                "guidance_scale": 3.5,
                "aspect_ratio": "1:1",
                "on_failure": "return what succeeded",
                "timeout_s": 600,
            },
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "e2e/batch"}},
    }
    cancelled = run_prompt(server, batch, timeout=120)
    assert cancelled.status == "interrupted", cancelled.error_line()
    # One more submit through the same account's FIFO scheduler: any batch task still queued there
    # would be submitted before it.
    probe = run_prompt(server, _generate("the probe after the cancel", variations), timeout=120)
    assert probe.ok, probe.error_line()
    with lock:
        after = events[events.index("cancel") + 1 :]
    assert after == ["submit the probe after the cancel"], events


def test_a_paid_fixed_seed_prompt_requeued_while_the_journal_is_locked_pays_nothing(
    server: ComfyServer, bronze: Emulator, journal: Path
) -> None:
    bronze.reset()
    bronze.configure(tier="bronze", minute_s=MINUTE_S)
    prompt = _generate("paid once, then the journal is locked", 31)
    first = run_prompt(server, prompt, timeout=120)
    assert first.ok, first.error_line()
    assert bronze.submissions == 1
    holder = subprocess.Popen(
        [sys.executable, str(LOCK_HOLDER), str(journal / "journal.sqlite3"), "60"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        again = run_prompt(server, prompt, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert again.status == "error", again.error_line()
    assert bronze.submissions == 1  # not paid again
    message = str((again.error or {}).get("exception_message") or "").strip()
    assert "\n" not in message, message
    assert "journal.sqlite3 is locked by another process (waited 2 s)" in message, message
    assert "force_rerun" in message, message
