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
from tests.support.node_calls import call

DAY = 86400.0


async def _generate(pack: ModuleType, prompt: str, seed: int = 7) -> Any:
    task, _ = await call(
        "FluxKontextMaxGenerate", prompt, seed=seed, guidance_scale=3.5, aspect_ratio="1:1", sync_mode=False
    )
    return task


# --------------------------------------------------------------------------- garbage never disables lookups


def test_garbage_rows_are_skipped_with_one_warning(
    pack: ModuleType, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows another version or a broken disk left behind (1e400, NaN, deep nesting, wrong types)
    are skipped one by one in listings; the good rows and the lookup of other inputs keep working,
    and the lookup of the inputs they belong to fails closed."""
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
    journal.record_submitted("other", model="m", params={"prompt": "q"}, price_usd=0.08, identity_hash="k")
    JournalError = pack.wavespeed.journal.sqlite_file.JournalError
    with caplog.at_level(logging.WARNING, logger="wavespeed"):
        for _ in range(3):
            assert [r.request_id for r in journal.recent()] == ["other", "good"]
            assert journal.get("deep") is None and journal.get("good") is not None
            assert journal.find_completed("k", statuses=("in_flight",)).request_id == "other"
            # A lookup of the very inputs those rows belong to cannot tell: it fails closed.
            with pytest.raises(JournalError, match="unreadable row for these inputs"):
                journal.find_completed("h")
    assert good.params == {"prompt": "p"}
    warnings = [r.getMessage() for r in caplog.records if "skipping unreadable task row" in r.getMessage()]
    assert len(warnings) == 6, warnings  # one per bad row, not one per listing
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
        asyncio.run(call("WaveSpeedRecentTasks", 0, "all"))
    message = str(caught.value)
    assert "journal.sqlite3 is corrupt" in message and "kept aside as journal.sqlite3.corrupt-" in message
    assert "\n" not in message
    (aside,) = journal_dir.glob("journal.sqlite3.corrupt-*")
    assert aside.read_bytes() == note  # kept, never deleted
    task = asyncio.run(_generate(pack, "with a new journal"))  # queued again: a new journal
    assert task.request_id and pack_env.submissions == 1


# --------------------------------------------------------------------------- nothing about a paid task is guessed


def _paid_and_restarted(pack: ModuleType, emulator: Emulator, prompt: str) -> str:
    """Pay for ``prompt`` with a fixed seed (journaled), then forget everything in memory."""
    task = asyncio.run(_generate(pack, prompt))
    assert emulator.submissions == 1
    pack.wavespeed.tasks.paid.submit.reset_session_state()
    return str(task.request_id)


@pytest.mark.parametrize(
    ("column", "garbage"),
    [("outputs", "["), ("params", "{"), ("status", "bogus"), ("price_usd", 1e400), ("submitted_at", "soon")],
)
def test_an_unreadable_row_of_the_task_looked_up_fails_closed(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path, column: str, garbage: object
) -> None:
    """Main logged 'skipping unreadable task row' and paid again: one line naming the file and
    force_rerun, nothing paid; force_rerun still pays."""
    rid = _paid_and_restarted(pack, pack_env, "a damaged paid row")
    with sqlite3.connect(journal_dir / "journal.sqlite3") as db:
        db.execute(f"UPDATE tasks SET {column} = ? WHERE request_id = ?", (garbage, rid))
    db.close()
    JournalError = pack.wavespeed.journal.sqlite_file.JournalError
    with pytest.raises(JournalError) as caught:
        asyncio.run(_generate(pack, "a damaged paid row"))
    message = str(caught.value)
    assert pack_env.submissions == 1, "paid again over an unreadable row of the same task"
    assert (
        "\n" not in message and str(journal_dir / "journal.sqlite3") in message and "force_rerun" in message
    )
    forced = asyncio.run(
        call(
            "FluxKontextMaxGenerate",
            "a damaged paid row",
            seed=7,
            guidance_scale=3.5,
            aspect_ratio="1:1",
            sync_mode=False,
            force_rerun=True,
        )
    )[0]
    assert forced.request_id != rid and pack_env.submissions == 2


@pytest.mark.parametrize("still_there", [True, False])
def test_a_requeue_outside_the_reuse_window_asks_wavespeed_first(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path, still_there: bool
) -> None:
    """After a reboot the wall clock reads 6.99 days later: main paid again without asking. The
    journaled task is asked for first, reused if WaveSpeed still has it, else marked expired."""
    rid = _paid_and_restarted(pack, pack_env, "paid a week ago, by the wall clock")
    with sqlite3.connect(journal_dir / "journal.sqlite3") as db:  # an earlier boot, 6.99 days ago
        db.execute(
            "UPDATE tasks SET submitted_at = ?, boot_id = 'an-earlier-boot' WHERE request_id = ?",
            (time.time() - 6.99 * DAY, rid),
        )
    db.close()
    if not still_there:
        pack_env.reset()
    before = len(pack_env.requests)
    task = asyncio.run(_generate(pack, "paid a week ago, by the wall clock"))
    asked = [r.route for r in pack_env.requests[before:]]
    assert asked[0] == "result" and rid in pack_env.requests[before].path  # asked before anything else
    journal = pack.wavespeed.tasks.journals.current_journal()
    if still_there:
        assert task.request_id == rid and task.price_usd == 0.0 and pack_env.submissions == 1
        assert "submit" not in asked
    else:
        assert task.request_id != rid and pack_env.submissions == 1 and asked[-1] == "submit"
        assert journal.get(rid).status == "expired"
