"""The journal's SQLite file: where it lives, how it is opened (0600, WAL, ``synchronous=FULL``,
the schema, the one-time import of the old JSON records) and the locked connection and
``BEGIN IMMEDIATE`` transactions the journal's queries run in. The queries live in journal.py.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from . import errors as E
from .journal_rows import SCHEMA

if TYPE_CHECKING:
    import sqlite3

ENV_JOURNAL_DIR = "WAVESPEED_JOURNAL_DIR"
DB_NAME = "journal.sqlite3"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 15000


class JournalError(E.WaveSpeedError):
    """The journal file cannot be opened (damaged, not a database, unwritable folder)."""


class JournalFile:
    """One journal directory's SQLite file: one connection per instance, opened on first use and
    guarded by a lock."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).expanduser()
        self.path = self.directory / DB_NAME
        self.tasks_dir = self.directory / "tasks"  # the old JSON journal, imported once
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._warned: set[str] = set()

    def __repr__(self) -> str:
        return f"Journal({str(self.directory)!r})"

    # ------------------------------------------------------------------ connection

    def _connect(self) -> sqlite3.Connection:
        import sqlite3  # imported on first use: keeps the pack's import fast

        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Create the file 0600 before SQLite does (it copies the mode to the -wal and -shm files).
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")  # a paid task's row survives a power cut
            conn.executescript(SCHEMA)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            imported = conn.execute("SELECT value FROM meta WHERE key = 'legacy_json_imported'").fetchone()
            if imported is None:
                from .journal_legacy import import_json_records

                import_json_records(conn, self.tasks_dir)
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                import sqlite3

                try:
                    self._conn = self._connect()
                except (sqlite3.Error, OSError) as exc:
                    raise JournalError(
                        f"The WaveSpeed task journal {self.path} cannot be opened ({exc}): move the file "
                        f"away or set {ENV_JOURNAL_DIR} to another folder (paid results stay fetchable by "
                        "request id for 7 days)."
                    ) from None
            yield self._conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT: takes the write lock first, so a read-then-write is atomic
        across processes (waits up to the busy timeout for another writer)."""
        with self._db() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def default_journal_dir(
    comfy_user_dir: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None
) -> Path:
    """``$WAVESPEED_JOURNAL_DIR``, else ComfyUI's user directory, else ``~/.cache``; never a workflow."""
    env = os.environ if env is None else env
    override = (env.get(ENV_JOURNAL_DIR) or "").strip()
    if override:
        return Path(override).expanduser()
    if comfy_user_dir:
        return Path(comfy_user_dir) / "wavespeed" / "journal"
    return Path("~/.cache/wavespeed-kontext/journal").expanduser()
