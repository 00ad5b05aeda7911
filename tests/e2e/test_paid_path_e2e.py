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

from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator import Emulator
from scripts.comfy_harness import ComfyServer, interrupt, run_prompt
from tests.support.graphs import batch_graph, generate_chain
from tests.support.journal_processes import journal_locked
from tests.support.submit_log import cancel_after_submits

pytestmark = pytest.mark.timeout(300)

MINUTE_S = 4.0  # Bronze: 2 submits a (scaled) minute


@pytest.fixture(scope="module")
def bronze_minute_s() -> float:
    return MINUTE_S


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("paid-path-journal")


@pytest.fixture(scope="module")
def server(comfy_installed: Path, bronze_env: dict[str, str], journal: Path) -> Iterator[ComfyServer]:
    env = {
        **bronze_env,
        "WAVESPEED_ACCOUNT_TIER": "bronze",
        "WAVESPEED_JOURNAL_DIR": str(journal),
        "WAVESPEED_JOURNAL_LOCK_WAIT_S": "2",
    }
    with ComfyServer(env=env, cache_none=True) as srv:
        yield srv


@pytest.mark.parametrize("variations", [6, 30])  # 30: more tasks than the batch's 24 in flight
def test_a_cancelled_batch_submits_nothing_after_the_cancel(
    server: ComfyServer, bronze: Emulator, monkeypatch: pytest.MonkeyPatch, variations: int
) -> None:
    bronze.reset()
    bronze.configure(tier="bronze", minute_s=MINUTE_S)
    # the batch's second accepted submit: press Cancel now
    log = cancel_after_submits(
        bronze, monkeypatch, 2, lambda: interrupt(server), lambda b: f"submit {b.get('prompt')}"
    )
    batch = batch_graph("a cancelled batch", variations, 5151 + variations)
    cancelled = run_prompt(server, batch, timeout=120)
    assert cancelled.status == "interrupted", cancelled.error_line()
    # One more submit through the same account's FIFO scheduler: any batch task still queued there
    # would be submitted before it.
    probe = run_prompt(
        server, generate_chain("paid", "the probe after the cancel", seed=variations), timeout=120
    )
    assert probe.ok, probe.error_line()
    assert log.after_cancel() == ["submit the probe after the cancel"], log.events


def test_a_paid_fixed_seed_prompt_requeued_while_the_journal_is_locked_pays_nothing(
    server: ComfyServer, bronze: Emulator, journal: Path
) -> None:
    bronze.reset()
    bronze.configure(tier="bronze", minute_s=MINUTE_S)
    prompt = generate_chain("paid", "paid once, then the journal is locked", seed=31)
    first = run_prompt(server, prompt, timeout=120)
    assert first.ok, first.error_line()
    assert bronze.submissions == 1
    with journal_locked(journal / "journal.sqlite3", 60):
        again = run_prompt(server, prompt, timeout=120)
    assert again.status == "error", again.error_line()
    assert bronze.submissions == 1  # not paid again
    message = str((again.error or {}).get("exception_message") or "").strip()
    assert "\n" not in message, message
    assert "journal.sqlite3 is locked by another process (waited 2 s)" in message, message
    assert "force_rerun" in message, message
