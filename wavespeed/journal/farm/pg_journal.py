"""The journal in PostgreSQL (``WAVESPEED_JOURNAL_URL=postgresql://user:password@host:port/db``), so
every ComfyUI worker of a farm shares one: the same task rows, intents (single-flight) and leases.

Decisions, and why:

* **The same statements as SQLite.** The journal's queries (task_journal.py, task_reads.py) are
  plain SQL with named ``:parameters``; here they run through SQLAlchemy Core's ``text()`` on
  psycopg 3 (SQLAlchemy is already a ComfyUI requirement). SQLite keeps the stdlib driver it has
  (its file modes, WAL, ``BEGIN IMMEDIATE`` and corrupt-file handling are proven there). Only the
  column types differ (``DOUBLE PRECISION`` for REAL: PostgreSQL's REAL is 4 bytes).
* **Claims by the database.** Each claim and each record of an identity first takes a
  transaction-level advisory lock on (account, identity): a claimer sees either the other worker's
  intent or its task, never neither, as ``BEGIN IMMEDIATE`` gives SQLite.
* **Leases by the database's clock.** ``now`` is the server's ``clock_timestamp()``: workers whose
  clocks disagree judge a lease alike. Another host's owner is judged by its lease alone.
* **Fails closed, in one line, without the password.** A database that cannot be reached, is
  read-only, drops the connection or holds a schema from a newer version raises one JournalError
  naming the URL with ``***`` for its password; a submit is then not sent (force_rerun pays
  without the journal). A dropped connection is replaced on the next use (pool pre-ping).
* **Import stays light.** SQLAlchemy and psycopg load on the first use of a farm journal.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...core import errors as E
from ...core.redaction import register_secret
from ..rows import SCHEMA
from ..sqlite_file import (
    FULL,
    LOCKED,
    READ_ONLY,
    UNAVAILABLE,
    JournalError,
    Statements,
    lock_wait_s,
    newer_schema,
    unreadable_row,
)
from ..task_journal import Journal

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

ENV_JOURNAL_URL = "WAVESPEED_JOURNAL_URL"
SCHEMA_VERSION = 1
_SCHEMA_LOCK = 0x5753_4B4A  # the advisory lock held while a worker makes the tables
_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
_PG_TYPES = {" REAL ": " DOUBLE PRECISION ", " INTEGER": " BIGINT"}
# What only a farm shares (account_limits.py): the account's submits of the last window, the
# account's tasks in flight (a slot each, leased), and what the farm has spent.
FARM_TABLES = (
    "CREATE TABLE IF NOT EXISTS account_submits (account TEXT NOT NULL, slot TEXT PRIMARY KEY, "
    "at DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS account_submits_by_time ON account_submits (account, at)",
    "CREATE TABLE IF NOT EXISTS account_slots (account TEXT NOT NULL, slot TEXT PRIMARY KEY, "
    "request_id TEXT NOT NULL DEFAULT '', lease_until DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS account_slots_by_task ON account_slots (request_id)",
    "CREATE TABLE IF NOT EXISTS farm_spend (slot TEXT PRIMARY KEY, account TEXT NOT NULL, "
    "price_usd DOUBLE PRECISION NOT NULL, at DOUBLE PRECISION NOT NULL)",
)

# SQLSTATE classes of PostgreSQL's errors, told apart because the way on differs.
_KIND_BY_STATE = {
    "25006": READ_ONLY,  # read_only_sql_transaction (a standby, default_transaction_read_only)
    "42501": READ_ONLY,  # insufficient_privilege
    "53100": FULL,  # disk_full
    "55P03": LOCKED,  # lock_not_available (lock_timeout)
    "40P01": LOCKED,  # deadlock_detected
    "40001": LOCKED,  # serialization_failure
}


def journal_url(env: Mapping[str, str] | None = None) -> str:
    """``$WAVESPEED_JOURNAL_URL`` ("" when unset: the local SQLite journal)."""
    env = os.environ if env is None else env
    return (env.get(ENV_JOURNAL_URL) or "").strip()


def safe_url(url: str) -> str:
    """The URL as lines show it: the password (in the user part or the query) is ``***``."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        user = parts.netloc.rpartition("@")[0].partition(":")[0]
        netloc = f"{user}:***@{host}" if parts.password is not None else parts.netloc
        query = urlencode([(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)])
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:
        return f"({ENV_JOURNAL_URL}, unreadable)"


def engine_url(url: str) -> str:
    """The SQLAlchemy URL for psycopg 3; ConfigError (one line) for anything but a PostgreSQL URL."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _SCHEMES or not rest:
        raise E.ConfigError(
            f"{ENV_JOURNAL_URL} must be a postgresql://user:password@host:port/database URL, not "
            f"{safe_url(url)[:60]!r}: fix it, or unset it for the local journal."
        )
    return f"postgresql+psycopg://{rest}"


def _detail(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    first = first.rsplit("failed: ", 1)[-1]  # libpq: "connection to server at ... failed: <why>"
    return E.redact(" ".join(first.split()))[:60]


def classify_pg(exc: BaseException) -> str:
    """Which of LOCKED, FULL, READ_ONLY, UNAVAILABLE a database error means (by its SQLSTATE)."""
    if type(exc).__name__ == "TimeoutError" and type(exc).__module__.startswith("sqlalchemy"):
        return LOCKED  # every pooled connection of this worker busy past the pool's wait
    state = str(getattr(getattr(exc, "orig", None), "sqlstate", "") or "")
    return _KIND_BY_STATE.get(state, UNAVAILABLE)


def farm_failure(where: str, exc: BaseException) -> JournalError:
    """One line for a farm journal that cannot answer: which database (no password), what, and how on."""
    kind = classify_pg(exc)
    what, fix = {
        LOCKED: (f"is busy (waited {lock_wait_s():g} s for a lock)", "queue again in a moment"),
        FULL: (f"cannot be written, the database is full ({_detail(exc)})", "free space on the database"),
        READ_ONLY: (f"is read-only ({_detail(exc)})", f"point {ENV_JOURNAL_URL} at a writable primary"),
        UNAVAILABLE: (f"cannot be used ({_detail(exc)})", f"check the database and {ENV_JOURNAL_URL}"),
    }[kind]
    return JournalError(
        f"WaveSpeed journal {where} {what}",
        hint=f"nothing was submitted; {fix}, or turn on force_rerun to pay without the journal",
        kind=kind,
    )


class _Rows:
    """A statement's outcome, read whole (the journal's queries return few rows)."""

    def __init__(self, rowcount: int, rows: list[tuple[Any, ...]]) -> None:
        self.rowcount = rowcount
        self._rows = rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._rows)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._rows)


class _Statements:
    """The journal's statements (named parameters) on a SQLAlchemy connection, as ``text()``."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters: Any = None, /) -> _Rows:
        from sqlalchemy import text

        result = self._conn.execute(text(sql), dict(parameters or {}))
        rows = [tuple(row) for row in result] if result.returns_rows else []
        return _Rows(result.rowcount, rows)


def _schema_statements() -> list[str]:
    schema = SCHEMA
    for sqlite_type, pg_type in _PG_TYPES.items():
        schema = schema.replace(sqlite_type, pg_type)
    return [
        *(s.strip() for s in schema.split(";") if s.strip()),
        *FARM_TABLES,
        "CREATE TABLE IF NOT EXISTS wavespeed_schema (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)",
    ]


class PostgresJournal(Journal):
    """The journal in one PostgreSQL database, shared by every worker that names it: the same
    reads and writes as the SQLite journal, on a small connection pool opened on first use (threads
    use its connections in parallel; each claim and record is serialized by the database)."""

    def __init__(self, url: str) -> None:
        self._engine_url = engine_url(url)  # ConfigError before anything else
        self._safe = safe_url(url)
        password = urlsplit(url).password
        if password:
            register_secret(password)  # never in a line or a log, in any form
        self._lock = threading.RLock()
        self._engine: Engine | None = None
        self._warned: set[str] = set()

    def __repr__(self) -> str:
        return f"PostgresJournal({self._safe!r})"

    @property
    def label(self) -> str:
        return self._safe

    def failure(self, exc: BaseException) -> JournalError:
        return farm_failure(self._safe, exc)

    def unreadable(self, request_id: object, exc: BaseException) -> JournalError:
        return unreadable_row(self._safe, request_id, exc)

    def serialize(self, conn: Statements, account: str, identity: str) -> None:
        """A transaction-level advisory lock on (account, identity), held until it ends."""
        key = f"{account}\n{identity}"
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))", {"key": key})

    def now(self, conn: Statements) -> float:
        """The database server's clock (epoch seconds): the one every worker's leases are judged by."""
        return float(conn.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()[0])

    # ------------------------------------------------------------------ connection

    def _open_engine(self) -> Engine:
        from sqlalchemy import create_engine

        options = f"-c lock_timeout={int(lock_wait_s() * 1000)} -c idle_in_transaction_session_timeout=60000"
        engine = create_engine(
            self._engine_url,
            pool_size=2,  # a worker's connections: at most 5 (a farm of N workers: 5 N)
            max_overflow=3,
            pool_pre_ping=True,  # a connection the server dropped is replaced, not used
            hide_parameters=True,
            connect_args={"connect_timeout": 10, "application_name": "wavespeed-kontext", "options": options},
        )
        try:
            with engine.begin() as conn:
                self._ensure_schema(_Statements(conn))
        except BaseException:
            engine.dispose()
            raise
        return engine

    def _ensure_schema(self, conn: _Statements) -> None:
        """Make the tables (once, under an advisory lock: workers starting together do not race);
        refuse a schema from a newer version of the pack."""
        if self._schema_version(conn) == SCHEMA_VERSION:
            return
        conn.execute("SELECT pg_advisory_xact_lock(:key)", {"key": _SCHEMA_LOCK})
        found = self._schema_version(conn)
        if found == SCHEMA_VERSION:
            return
        for statement in _schema_statements():
            conn.execute(statement)
        conn.execute(
            "INSERT INTO wavespeed_schema (id, version) VALUES (1, :version) "
            "ON CONFLICT (id) DO UPDATE SET version = excluded.version",
            {"version": SCHEMA_VERSION},
        )

    def _schema_version(self, conn: _Statements) -> int | None:
        """The schema version in the database (None: no tables yet); a newer one raises."""
        (table,) = conn.execute("SELECT to_regclass('wavespeed_schema')").fetchone() or (None,)
        if table is None:
            return None
        (found,) = conn.execute("SELECT max(version) FROM wavespeed_schema").fetchone() or (None,)
        if found is not None and int(found) > SCHEMA_VERSION:
            raise newer_schema(self._safe, int(found), SCHEMA_VERSION)
        return None if found is None else int(found)

    @contextmanager
    def _db(self) -> Iterator[Statements]:
        with self.transaction() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[Statements]:
        """One transaction on a pooled connection; a database error becomes one JournalError."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self._engine_now().begin() as conn:  # the pool's connections: threads run in parallel
                yield _Statements(conn)
        except (SQLAlchemyError, OSError) as exc:
            self.close()  # the next use connects again
            raise farm_failure(self._safe, exc) from None

    def _engine_now(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = self._open_engine()
            return self._engine

    @contextmanager
    def _transaction(self) -> Iterator[Statements]:
        with self.transaction() as conn:
            yield conn

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
