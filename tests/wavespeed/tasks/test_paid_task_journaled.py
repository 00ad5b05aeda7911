"""A paid task is always journaled: when the journal write fails after WaveSpeed accepted the POST
(another process holds the journal's write lock), the request id stays in memory and in the node's
output, the write is retried until it lands, and a re-queue in the same process reuses the task at
once instead of waiting on its own claim. A real lock-holding process, the emulator over real
sockets."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from types import ModuleType

import pytest

from emulator import Emulator
from tests.support.journal_processes import journal_locked
from tests.support.node_calls import capture_status, generate

PROMPT = "a fixed-seed prompt paid while the journal is locked"


@pytest.fixture(autouse=True)
def short_waits(pack: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAVESPEED_JOURNAL_LOCK_WAIT_S", "0.3")
    # Main waited INTENT_WAIT_S (240 s) on its own claim; 3 s is enough to see it wait at all.
    monkeypatch.setattr(pack.wavespeed.tasks.paid.shared_task, "INTENT_WAIT_S", 3.0)


def _lock_during_the_post(
    pack: ModuleType, emulator: Emulator, journal_dir: Path, *, requeue_while_locked: bool = False
) -> str:
    """A sync-mode Generate whose journal write meets another process's lock: its request id."""
    emulator.configure(inference_s=1.5)

    async def run() -> str:
        job = asyncio.ensure_future(generate(PROMPT, seed=7, sync_mode=True, unique_id="3"))
        while emulator.submissions == 0:  # the POST is on the wire (sync mode: until the image is done)
            await asyncio.sleep(0.01)
        with journal_locked(journal_dir / "journal.sqlite3", 600):
            task, rid = await job
            assert rid == task.request_id
            if not requeue_while_locked:
                return str(rid)
            # While the lock is held, a re-queue finds the paid task in memory: no charge, no wait.
            again, _ = await generate(PROMPT, seed=7, sync_mode=True, unique_id="4")
            assert again.request_id == rid and again.price_usd == 0.0
        return str(rid)

    return asyncio.run(run())


def test_a_paid_task_whose_record_meets_a_lock_is_kept_and_journaled_later(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = capture_status(pack, monkeypatch)
    rid = _lock_during_the_post(pack, pack_env, journal_dir, requeue_while_locked=True)
    assert pack_env.submissions == 1
    assert any(f"task {rid}" in line and "not journaled yet" in line for line in shown), shown
    journal = pack.wavespeed.tasks.journals.current_journal()
    deadline = time.monotonic() + 60  # generous: the write is retried in the background
    while journal.get(rid) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    record = journal.get(rid)
    assert record is not None and record.status == "completed"

    # The lock is gone and the row landed: the re-queue is an ordinary reuse, never a wait on our claim.
    again, _ = asyncio.run(generate(PROMPT, seed=7, sync_mode=True, unique_id="5"))
    assert again.request_id == rid and pack_env.submissions == 1


def test_a_requeue_right_after_the_lock_never_waits_on_its_own_claim(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Main: 'Another ComfyUI (pid <our own pid>) is still submitting an identical task' after a wait."""
    errors = pack.wavespeed.core.errors
    rid = _lock_during_the_post(pack, pack_env, journal_dir)
    started = time.monotonic()
    try:
        again, _ = asyncio.run(generate(PROMPT, seed=7, sync_mode=True, unique_id="6"))
    except errors.WaitTimeoutError as exc:
        pytest.fail(f"waited on its own claim ({time.monotonic() - started:.1f} s, pid {os.getpid()}): {exc}")
    assert again.request_id == rid and again.price_usd == 0.0 and pack_env.submissions == 1
