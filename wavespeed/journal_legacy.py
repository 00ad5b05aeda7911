"""One-time import of the old JSON journal (``<dir>/tasks/*.json``, one file per task) into SQLite.

Runs once per journal file, inside one ``BEGIN IMMEDIATE`` transaction, and records that it ran, so
no later start reads those files again. Only regular files are opened (a FIFO named ``x.json`` is
skipped by its ``lstat``, and opened with O_NONBLOCK | O_NOFOLLOW and checked again by ``fstat``
in case it was swapped in between); files over 1 MiB and records that do not parse are skipped
with one warning each. The files themselves are left in place.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .journal_rows import task_values
from .records import TaskRecord

if TYPE_CHECKING:
    import sqlite3

log = logging.getLogger("wavespeed")

MAX_RECORD_BYTES = 1 << 20
MAX_FILES = 100_000


def _read_regular(path: Path) -> bytes | None:
    """The bytes of ``path`` if it is a regular file of at most MAX_RECORD_BYTES, else None."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_RECORD_BYTES:
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(MAX_RECORD_BYTES + 1)[:MAX_RECORD_BYTES]
    finally:
        os.close(fd)


def import_json_records(conn: sqlite3.Connection, tasks_dir: Path) -> int:
    """Copy every readable old record into ``tasks`` (existing rows win); returns how many."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("SELECT 1 FROM meta WHERE key = 'legacy_json_imported'").fetchone() is not None:
            conn.execute("COMMIT")
            return 0  # another process did it while we waited for the lock
        imported = 0
        try:
            entries = sorted(os.scandir(tasks_dir), key=lambda e: e.name)[:MAX_FILES]
        except OSError:
            entries = []
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.endswith(".json"):
                continue
            raw = _read_regular(Path(entry.path))
            if raw is None:
                log.warning(
                    "WaveSpeed journal: not importing %s (not a regular file, or over 1 MiB)", entry.name
                )
                continue
            try:
                record = TaskRecord.from_json(json.loads(raw.decode("utf-8")))
                values = _values(record)
            except (ValueError, RecursionError, OverflowError, UnicodeDecodeError) as exc:
                log.warning("WaveSpeed journal: not importing %s (%s)", entry.name, type(exc).__name__)
                continue
            conn.execute(
                "INSERT OR IGNORE INTO tasks (request_id, model, identity, account, params, submitted_at, "
                "updated_at, status, server_status, outputs, files, price_usd, error, note, inference_ms, "
                "boot_id, boot_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*values, "", 0.0),  # from an unknown boot: aged by the wall clock
            )
            imported += 1
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('legacy_json_imported', ?)",
            (f"{imported} record(s) at {time.strftime('%Y-%m-%d %H:%M:%S')}",),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if imported:
        log.info("WaveSpeed journal: imported %d task record(s) from %s", imported, tasks_dir)
    return imported


def _values(r: TaskRecord) -> tuple[object, ...]:
    return task_values(r)
