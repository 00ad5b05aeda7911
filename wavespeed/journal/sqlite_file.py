"""The journal's SQLite file: where it lives, how it is opened (0600, WAL, ``synchronous=FULL``,
the schema) and the locked connection and ``BEGIN IMMEDIATE`` transactions the journal's queries
run in. The queries live in task_journal.py and task_reads.py.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..core import errors as E
from .rows import ADDED_COLUMNS, SCHEMA

if TYPE_CHECKING:
    import sqlite3

ENV_JOURNAL_DIR = "WAVESPEED_JOURNAL_DIR"
DB_NAME = "journal.sqlite3"
SCHEMA_VERSION = 2  # 2: intents keep the payload sent
BUSY_TIMEOUT_MS = 15000


ENV_LOCK_WAIT = "WAVESPEED_JOURNAL_LOCK_WAIT_S"

# What is wrong with the journal, told apart because the way on differs.
LOCKED, FULL, CORRUPT, READ_ONLY, UNAVAILABLE = "locked", "full", "corrupt", "read-only", "unavailable"


class Rows(Protocol):
    """What a statement gives back, from either backend: sqlite3's cursor, or the PostgreSQL one's."""

    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Statements(Protocol):
    """A connection the journal's statements run on (named ``:parameters``, the same text for
    SQLite and PostgreSQL): a sqlite3 connection, or a SQLAlchemy one behind journal/farm."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Rows: ...


class JournalError(E.WaveSpeedError):
    """The journal cannot answer (locked past its wait, full disk, corrupt, read-only, unusable).
    ``kind`` says which; ``path`` is the file. A fixed-seed submit is not sent on it (fails closed)."""

    def __init__(
        self, what: str = "", *, kind: str = UNAVAILABLE, path: Path | None = None, **fields: Any
    ) -> None:
        self.kind = kind
        self.path = path
        super().__init__(what, **fields)


def lock_wait_s() -> float:
    """How long a journal write waits for another process's lock (``WAVESPEED_JOURNAL_LOCK_WAIT_S``)."""
    from ..settings.env_numbers import positive_float_from_env

    return positive_float_from_env(ENV_LOCK_WAIT, BUSY_TIMEOUT_MS / 1000, "seconds")


def classify(exc: BaseException) -> str:
    """Which of LOCKED, FULL, CORRUPT, READ_ONLY, UNAVAILABLE a sqlite3 or OS error means."""
    import errno

    name = str(getattr(exc, "sqlite_errorname", "") or "")
    text = str(exc).lower()
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "is locked" in text:
        return LOCKED
    if (
        name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
        or "not a database" in text
        or "malformed" in text
    ):
        return CORRUPT
    if name.startswith(("SQLITE_FULL", "SQLITE_IOERR")) or "disk is full" in text or "disk i/o" in text:
        return FULL
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")) or (
        "readonly" in text or "unable to open" in text
    ):
        return READ_ONLY
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", -1)):
        return FULL
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return READ_ONLY
    return UNAVAILABLE


def journal_failure(path: Path | None, exc: BaseException, aside: Path | None = None) -> JournalError:
    """One line for a journal that cannot answer: what is wrong with which file, and how to go on."""
    kind = classify(exc)
    where = str(path) if path is not None else f"folder ({ENV_JOURNAL_DIR})"
    detail = " ".join(str(exc).split())[:48] or type(exc).__name__
    what, fix = {
        LOCKED: (
            f"is locked by another process (waited {lock_wait_s():g} s)",
            "queue again when it is free",
        ),
        FULL: (f"cannot be written, disk full ({detail})", "free some disk space"),
        CORRUPT: (f"is corrupt ({detail})", "queue again to start a new journal"),
        READ_ONLY: (f"is read-only ({detail})", f"make it writable or set {ENV_JOURNAL_DIR}"),
        UNAVAILABLE: (f"cannot be used ({detail})", f"set {ENV_JOURNAL_DIR} to another folder"),
    }[kind]
    # The way on is the hint: a long path cuts the description, never what to do.
    kept = f"kept aside as {aside.name}; " if kind == CORRUPT and aside is not None else ""
    return JournalError(
        f"WaveSpeed journal {where} {what}",
        hint=f"{kept}nothing was submitted; {fix}, or turn on force_rerun to pay without the journal",
        kind=kind,
        path=path,
    )


def _add_columns(conn: sqlite3.Connection) -> None:
    """Bring a file written by an older version up to the schema (columns added since are
    appended with their defaults; another process doing the same at once is no error)."""
    import sqlite3

    for table, columns in ADDED_COLUMNS.items():
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for name, declaration in columns.items():
            if name in have:
                continue
            try:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):
                    raise


def newer_schema(where: str, found: int, known: int) -> JournalError:
    """One line for a journal written by a newer version of the pack: its rows are left untouched."""
    return JournalError(
        f"WaveSpeed journal {where} was written by a newer version of the pack (schema {found}; "
        f"this one knows {known})",
        hint="nothing was submitted; update the pack on this worker, or turn on force_rerun to pay "
        "without the journal",
        kind=UNAVAILABLE,
    )


def unreadable_row(
    where: str | Path, request_id: object, exc: BaseException, *, path: Path | None = None
) -> JournalError:
    """One line for a row of the inputs being looked up that cannot be read: it may be their paid
    task, so nothing is paid on a guess. ``where``: the journal (a file, or a farm's database by
    its URL without the password); ``path``: the file, for a SQLite journal."""
    rid = " ".join(str(request_id).split())[:40]
    return JournalError(  # the advice is the hint: a long path is cut, never the way on
        f"WaveSpeed journal {where} has an unreadable row for these inputs (task {rid}, "
        f"{type(exc).__name__}): it may be their paid task, so nothing was submitted",
        hint="fetch that task by id in Poll Result, or turn on force_rerun to pay again",
        kind=CORRUPT,
        path=path,
    )


class JournalFile:
    """One journal directory's SQLite file: one connection per instance, opened on first use and
    guarded by a lock."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).expanduser()
        self.path = self.directory / DB_NAME
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._warned: set[str] = set()

    def __repr__(self) -> str:
        return f"Journal({str(self.directory)!r})"

    @property
    def label(self) -> str:
        """Where the journal is, as lines show it and in-memory keys name it: its folder."""
        return str(self.directory)

    def failure(self, exc: BaseException) -> JournalError:
        """The one line for an error of this journal that came from outside its connection."""
        return journal_failure(self.path, exc)

    def unreadable(self, request_id: object, exc: BaseException) -> JournalError:
        return unreadable_row(self.path, request_id, exc, path=self.path)

    def serialize(self, conn: Statements, account: str, identity: str) -> None:
        """Make this transaction the only one for (account, identity) until it ends: nothing to do
        here, ``BEGIN IMMEDIATE`` already holds the file's one write lock."""

    def now(self, conn: Statements) -> float:
        """The journal's clock, which leases are written and judged by: this machine's, here."""
        return time.time()

    def clock(self) -> float:
        with self._db() as conn:
            return self.now(conn)

    # ------------------------------------------------------------------ connection

    def _connect(self) -> sqlite3.Connection:
        import sqlite3  # imported on first use: keeps the pack's import fast

        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Create the file 0600 before SQLite does (it copies the mode to the -wal and -shm files).
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        wait_s = lock_wait_s()
        deadline = time.monotonic() + wait_s
        while True:
            conn = sqlite3.connect(self.path, timeout=wait_s, isolation_level=None, check_same_thread=False)
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(wait_s * 1000)}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")  # a paid task's row survives a power cut
                (found,) = conn.execute("PRAGMA user_version").fetchone()
                if int(found) > SCHEMA_VERSION:
                    raise newer_schema(str(self.path), int(found), SCHEMA_VERSION)
                conn.executescript(SCHEMA)
                _add_columns(conn)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                return conn
            except sqlite3.OperationalError as exc:
                conn.close()
                # Two processes opening a new file at once: switching it to WAL (and its first
                # schema write) can fail "locked" at once, without SQLite's busy wait. Try again
                # within the same wait; past it, the caller reports the lock in one line.
                if classify(exc) != LOCKED or time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)
            except BaseException:
                conn.close()
                raise

    @contextmanager
    def _db(self) -> Iterator[Statements]:
        """The connection; any sqlite3 or OS error in its use becomes one classified JournalError."""
        with self._sqlite() as conn:
            yield conn

    @contextmanager
    def _sqlite(self) -> Iterator[sqlite3.Connection]:
        import sqlite3

        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._connect()
                yield self._conn
            except (sqlite3.Error, OSError) as exc:
                raise self._failed(exc) from None

    def _failed(self, exc: BaseException) -> JournalError:
        """Drop the connection (the next use opens it again); a corrupt file is moved aside, kept."""
        self.close()
        aside = None
        if classify(exc) == CORRUPT:
            aside = self._move_aside()
        return journal_failure(self.path, exc, aside)

    def _move_aside(self) -> Path | None:
        """Rename the corrupt file (and its -wal/-shm) to ``journal.sqlite3.corrupt-<time>``: never deleted."""
        aside = self.path.with_name(f"{DB_NAME}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
        try:
            os.replace(self.path, aside)
        except OSError:
            return None
        for suffix in ("-wal", "-shm"):
            with suppress(OSError):
                os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
        return aside

    @contextmanager
    def _transaction(self) -> Iterator[Statements]:
        """BEGIN IMMEDIATE ... COMMIT: takes the write lock first, so a read-then-write is atomic
        across processes (waits up to the busy timeout for another writer)."""
        with self._sqlite() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
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
