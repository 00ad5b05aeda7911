"""The journal survives a hostile disk and clock: garbage records never disable lookups, a clock
jump of +-8 days never prunes or hides a minutes-old paid record. Real SQLite files, the real
emulator for the node-level cases."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from emulator import Emulator

DAY = 86400.0


async def _generate(pack: ModuleType, prompt: str, seed: int = 7) -> Any:
    node = pack.nodes.NODES["FluxKontextMaxGenerate"]()
    task, _ = await node.generate(prompt, seed=seed, guidance_scale=3.5, aspect_ratio="1:1", sync_mode=False)
    return task


# --------------------------------------------------------------------------- garbage never disables lookups


def test_garbage_rows_are_skipped_with_one_warning(
    pack: ModuleType, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows another version or a broken disk left behind (1e400, NaN, deep nesting, wrong types)
    are skipped one by one; the good rows and the indexed lookup keep working."""
    jmod = pack.wavespeed.journal.task_journal
    journal = jmod.Journal(tmp_path)
    good = journal.record_submitted(
        "good", model="m", params={"prompt": "p"}, price_usd=0.08, identity_hash="h"
    )
    journal.update("good", status="completed", inference_ms=1500)
    with sqlite3.connect(tmp_path / "journal.sqlite3") as db:
        row = "INSERT INTO tasks (request_id, model, identity, params, submitted_at, updated_at, status, price_usd) "
        now = time.time() + 10  # newer than the good row, so every lookup meets them first
        db.execute(row + "VALUES ('inf', 'm', 'h', '{}', ?, ?, 'completed', 1e400)", (now, now))
        db.execute(row + "VALUES ('nan', 'm', 'h', '{\"a\": NaN}', ?, ?, 'completed', 0)", (now, now))
        db.execute(
            row + "VALUES ('deep', 'm', 'h', ?, ?, ?, 'completed', 0)",
            ("[" * 100000 + "]" * 100000, now, now),
        )
        db.execute(row + "VALUES ('blob', 'm', 'h', x'00ff', ?, ?, 'completed', 0)", (now, now))
        db.execute(row + "VALUES ('bad id!', 'm', 'h', '{}', ?, ?, 'completed', 0)", (now, now))
        db.execute(row + "VALUES ('status', 'm', 'h', '{}', ?, ?, 'bogus', 0)", (now, now))
        db.execute("UPDATE tasks SET inference_ms = 1e400 WHERE request_id = 'inf'")
    with caplog.at_level(logging.WARNING, logger="wavespeed"):
        for _ in range(3):
            found = journal.find_completed("h")
            assert found is not None and found.request_id == "good" and found.params == good.params
            assert [r.request_id for r in journal.recent()] == ["good"]
            assert journal.get("deep") is None and journal.get("good") is not None
    warnings = [r.getMessage() for r in caplog.records if "skipping unreadable task row" in r.getMessage()]
    assert len(warnings) == 6, warnings  # one per bad row, not one per lookup
    assert journal.inference_times("m") == [1.5]


# --------------------------------------------------------------------------- clock jumps


@pytest.mark.parametrize("jump_days", [8, -8])
def test_clock_jumps_keep_minutes_old_paid_records(
    pack: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jump_days: int
) -> None:
    """A record written minutes ago survives pruning and is still reused whichever way the wall
    clock jumps by 8 days (forward, or written while the clock was 8 days behind and then fixed)."""
    jmod = pack.wavespeed.journal.task_journal
    real_time = time.time
    written_at = real_time() - 120 - (8 * DAY if jump_days < 0 else 0)
    monkeypatch.setattr(time, "time", lambda: written_at)
    journal = jmod.Journal(tmp_path)
    journal.record_submitted("paid", model="m", params={"prompt": "p"}, price_usd=0.08, identity_hash="h")
    journal.record_submitted("unpolled", model="m", params={"prompt": "q"}, price_usd=0.08, identity_hash="i")
    journal.update("paid", status="completed")
    getattr(journal, "close", lambda: None)()  # (today's main has no connection to close)

    now = real_time() + (8 * DAY if jump_days > 0 else 0)
    monkeypatch.setattr(time, "time", lambda: now)
    fresh = jmod.Journal(tmp_path)  # a new process after the jump: it prunes on its first write
    fresh.record_submitted("other", model="m", params={"prompt": "o"}, price_usd=0.08)
    assert fresh.prune() == 0 and fresh.prune(now) == 0
    assert {r.request_id for r in fresh.recent()} == {"paid", "unpolled", "other"}
    found = fresh.find_completed("h", 7 * DAY - 3600)
    assert found is not None and found.request_id == "paid"
    assert fresh.find_completed("i", 7 * DAY - 3600, statuses=("in_flight",)) is not None


def test_a_damaged_journal_file_is_one_typed_line_kept_aside_then_a_new_journal_starts(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path
) -> None:
    journal_dir.mkdir(parents=True)
    note = b"this is not a database, it is a note" * 100
    (journal_dir / "journal.sqlite3").write_bytes(note)
    errors = pack.wavespeed.core.errors
    with pytest.raises(errors.WaveSpeedError) as caught:
        asyncio.run(pack.nodes.NODES["WaveSpeedRecentTasks"]().pick(0, "all"))
    message = str(caught.value)
    assert "journal.sqlite3 is corrupt" in message and "kept aside as journal.sqlite3.corrupt-" in message
    assert "\n" not in message
    (aside,) = journal_dir.glob("journal.sqlite3.corrupt-*")
    assert aside.read_bytes() == note  # kept, never deleted
    task = asyncio.run(_generate(pack, "with a new journal"))  # queued again: a new journal
    assert task.request_id and pack_env.submissions == 1
