"""Issue 17 case 2: a journal that cannot say whether a fixed-seed task was paid stops the submit.

Locked by another process past its wait, a full disk (RLIMIT_FSIZE in a subprocess), a corrupt file
and a truncated file: 0 POSTs and one line saying what is wrong with which file and how to go on;
force_rerun still pays. Real SQLite files, real processes, the emulator over real sockets."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from emulator import Emulator
from tests.support.journal_processes import CRASH_WORKER, journal_locked
from tests.support.node_calls import generate

PROMPT = "a paid fixed-seed prompt"


@pytest.fixture(autouse=True)
def short_lock_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAVESPEED_JOURNAL_LOCK_WAIT_S", "0.5")  # the lock is held far longer


async def _generate(pack: ModuleType, force_rerun: bool = False) -> Any:
    task, _ = await generate(PROMPT, force_rerun=force_rerun)
    return task


def _paid_once(pack: ModuleType, emulator: Emulator) -> Any:
    """Pay for the prompt once (journaled), then forget everything in memory, as a restart would."""
    task = asyncio.run(_generate(pack))
    assert emulator.submissions == 1
    pack.wavespeed.tasks.paid.submit.reset_session_state()  # closes the journal (its WAL is checkpointed)
    return task


def _refused(pack: ModuleType, emulator: Emulator, kind: str) -> str:
    """Re-queue the paid prompt: the journal cannot answer, so one line and no POST."""
    with pytest.raises(pack.wavespeed.journal.sqlite_file.JournalError) as caught:
        asyncio.run(_generate(pack))
    message = str(caught.value)
    assert emulator.submissions == 1, "paid again although the journal could not tell"
    assert caught.value.kind == kind, message
    assert "\n" not in message and "journal.sqlite3" in message and "force_rerun" in message
    return message


def _force_rerun_pays(pack: ModuleType, emulator: Emulator) -> None:
    task = asyncio.run(_generate(pack, force_rerun=True))
    assert task.request_id and emulator.submissions == 2


def test_a_journal_locked_past_its_wait_pays_nothing(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path
) -> None:
    _paid_once(pack, pack_env)
    with journal_locked(journal_dir / "journal.sqlite3", 600):
        message = _refused(pack, pack_env, "locked")
        assert "locked by another process (waited 0.5 s)" in message
        _force_rerun_pays(pack, pack_env)


def test_a_full_disk_pays_nothing(pack: ModuleType, pack_env: Emulator, journal_dir: Path) -> None:
    """RLIMIT_FSIZE of one byte in a real ComfyUI-like process: every journal write fails (EFBIG)."""
    resource = pytest.importorskip("resource")  # POSIX only
    _paid_once(pack, pack_env)

    def tiny_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1, 1))

    done = subprocess.run(
        [sys.executable, str(CRASH_WORKER), PROMPT, "7", "--no-poll"],
        preexec_fn=tiny_files,  # noqa: PLW1509 (a test's own child, no threads involved)
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and pack_env.submissions == 1, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if "WaveSpeed journal" in line]
    assert len(lines) == 1 and "cannot be written, disk full" in lines[0], done.stderr
    assert "force_rerun" in lines[0]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "header only"])
def test_a_corrupt_or_truncated_journal_pays_nothing_and_is_kept_aside(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path, damage: str
) -> None:
    _paid_once(pack, pack_env)
    path = journal_dir / "journal.sqlite3"
    data = path.read_bytes()
    damaged = {
        "garbage": b"this is not a database, it is a note" * 100,
        "truncated": data[:4096],  # the schema page only: the tables' pages are gone
        "header only": data[:50],
    }[damage]
    path.write_bytes(damaged)
    message = _refused(pack, pack_env, "corrupt")
    (aside,) = journal_dir.glob("journal.sqlite3.corrupt-*")
    assert aside.read_bytes() == damaged and aside.name in message  # kept, never deleted
    _force_rerun_pays(pack, pack_env)


def test_sqlite_errors_are_told_apart(pack: ModuleType, tmp_path: Path) -> None:
    """Real sqlite3 errors: locked, read-only, corrupt and full are different lines (root ignores
    permission bits, so read-only comes from a read-only connection here)."""
    import sqlite3

    classify = pack.wavespeed.journal.sqlite_file.classify
    db = tmp_path / "x.sqlite3"
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.commit()
    ro = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    with pytest.raises(sqlite3.Error) as read_only:
        ro.execute("INSERT INTO t VALUES (1)")
    assert classify(read_only.value) == "read-only"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.Error) as locked:
        sqlite3.connect(db, timeout=0.05, isolation_level=None).execute("BEGIN IMMEDIATE")
    assert classify(locked.value) == "locked"
    (tmp_path / "bad").write_bytes(b"not a database" * 100)
    with pytest.raises(sqlite3.Error) as corrupt:
        sqlite3.connect(tmp_path / "bad").execute("SELECT * FROM sqlite_master")
    assert classify(corrupt.value) == "corrupt"
    assert classify(OSError(27, "File too large")) == "full"  # EFBIG


@pytest.mark.parametrize("kind", ["locked", "full", "corrupt", "read_only"])
def test_a_long_journal_path_cuts_the_description_never_the_way_on(pack: ModuleType, kind: str) -> None:
    """Regression: under a long folder (xdist's temp dirs) the corrupt journal's line was cut before
    'force_rerun'. The way on is the hint, so only the path's description gives way."""
    sqlite_file = pack.wavespeed.journal.sqlite_file
    path = Path("/" + "/".join(["a-rather-long-folder-name"] * 12)) / "journal.sqlite3"
    errors = {
        "locked": sqlite3.OperationalError("database is locked"),
        "full": sqlite3.OperationalError("database or disk is full"),
        "corrupt": sqlite3.DatabaseError("file is not a database"),
        "read_only": sqlite3.OperationalError("attempt to write a readonly database"),
    }
    error = sqlite_file.journal_failure(path, errors[kind], aside=path.with_name("journal.sqlite3.corrupt-x"))
    text = str(error)
    assert error.kind == kind.replace("_", "-"), text
    assert "\n" not in text and len(text) <= 300, text
    assert text.endswith("or turn on force_rerun to pay without the journal."), text
    assert "nothing was submitted" in text, text
    assert ("kept aside as journal.sqlite3.corrupt-x;" in text) == (kind == "corrupt"), text


def test_a_journal_from_a_newer_version_pays_nothing_and_is_left_as_it_is(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path
) -> None:
    _paid_once(pack, pack_env)
    with sqlite3.connect(journal_dir / "journal.sqlite3") as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    message = _refused(pack, pack_env, "unavailable")
    assert "newer version of the pack (schema 99; this one knows 2)" in message
    with sqlite3.connect(journal_dir / "journal.sqlite3") as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (99,)
    conn.close()
    _force_rerun_pays(pack, pack_env)
