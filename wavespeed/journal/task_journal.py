"""The task journal: every accepted (paid) task in one SQLite file, so no result is ever lost.

``<dir>/journal.sqlite3`` (stdlib sqlite3, WAL, ``synchronous=FULL``, mode 0600), shared by every
ComfyUI process that uses the directory; or, for a farm, the same tables in one PostgreSQL database
(farm/pg_journal.py runs these very statements, named ``:parameters``, through SQLAlchemy). Two
tables:

* ``tasks``: one row per accepted task, typed columns, an index on (identity, account): the lookup
  a fixed-seed re-queue makes is one indexed query, whatever the journal's size.
* ``intents``: one UNIQUE (account, identity) row claimed in a ``BEGIN IMMEDIATE`` transaction
  before an identical-input POST (cross-process single-flight, see singleflight.py). The transaction
  that records the accepted task deletes it.

Decisions:

* Reads are total (task_reads.py): a row that does not convert (1e400, NaN, deep nesting, a
  foreign schema) is skipped with one warning per row; it never disables the other rows or the lookup.
* Pruning is one DELETE of rows whose task was seen terminal (completed, failed, expired) and is
  older than the API's 7-day retention. A row never seen terminal is never pruned (it is a paid
  result nobody fetched yet). Ages are measured on ``CLOCK_BOOTTIME`` for rows written since the
  last boot (a wall-clock jump of days changes nothing), and on the wall clock only for rows from
  an earlier boot or from systems without a boot clock.

This module is pure (no ComfyUI): the node layer decides where the directory is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ..core import errors as E
from ..core.vocabulary import TERMINAL_JOURNAL_STATUSES, JournalStatus, check_journal_status, check_request_id
from .rows import (
    BOOT_ID,
    INTENT_COLUMNS,
    TASK_COLUMNS,
    age_sql,
    boot_seconds,
    clock_args,
    intent_from_row,
    intent_values,
    json_text,
    named,
    placeholders,
    task_values,
)
from .sqlite_file import ENV_JOURNAL_DIR, JournalError, default_journal_dir
from .task_reads import RETENTION_S, TaskReader
from .task_records import (
    STATUS_COMPLETED,
    STATUS_EXPIRED,
    STATUS_FAILED,
    STATUS_IN_FLIGHT,
    Intent,
    TaskRecord,
    assert_no_key,
    finite,
    params_hash,
    storable,
    urls_only,
)

__all__ = [
    "ENV_JOURNAL_DIR",
    "RETENTION_S",
    "JournalStatus",
    "STATUS_COMPLETED",
    "STATUS_EXPIRED",
    "STATUS_FAILED",
    "STATUS_IN_FLIGHT",
    "Intent",
    "Journal",
    "JournalError",
    "TaskRecord",
    "TaskTakenError",
    "default_journal_dir",
    "params_hash",
]

log = logging.getLogger("wavespeed")

_PRUNE_EVERY_S = 3600.0

_TASK_ROW = f"{TASK_COLUMNS}, boot_id, boot_s"
_INTENT_ROW = f"{INTENT_COLUMNS}, boot_id, boot_s"
# What an upsert of the same identity's row writes (everything but the key and the identity).
_UPSERT = ", ".join(
    f"{c} = excluded.{c}"
    for c in (*(name.strip() for name in TASK_COLUMNS.split(",")), "boot_id", "boot_s")
    if c not in ("request_id", "identity", "account")
)


class TaskTakenError(ValueError):
    """A task id already journaled for other inputs (another identity or account): never rewritten."""


_UPDATABLE = frozenset(
    [
        "model",
        "params",
        "account",
        "status",
        "server_status",
        "updated_at",
        "outputs",
        "files",
        "price_usd",
        "error",
        "note",
        "inference_ms",
    ]
)


# ---------------------------------------------------------------------- the journal


class Journal(TaskReader):
    """The journal in ``directory``: its task rows (read as TaskReader reads them), the
    single-flight intents and pruning. One SQLite connection per instance (see JournalFile), so
    it is safe to share between threads; several processes may use the same directory at once."""

    _last_prune = 0.0

    # ------------------------------------------------------------------ writing

    def record_submitted(
        self,
        request_id: str,
        *,
        model: str,
        params: Mapping[str, Any],
        price_usd: float,
        account: str = "",
        status: str = STATUS_IN_FLIGHT,
        server_status: str = "",
        outputs: Iterable[str] = (),
        error: str = "",
        submitted_at: float | None = None,
        identity_hash: str | None = None,
        release_intent: bool = False,
    ) -> TaskRecord:
        """Write the row of a task the server just accepted (before anyone waits on it).
        ``identity_hash`` replaces params_hash(model, params) where the caller knows a more stable
        identity (uploaded images by content rather than by their per-upload URL). With
        ``release_intent`` the (account, identity) intent row goes in the same transaction, so a
        process waiting on it always finds either the intent or this task."""
        assert_no_key(params)
        now = time.time()
        record = TaskRecord(
            request_id=check_request_id(request_id, ValueError),
            model=model,
            params=storable(dict(params)),
            params_hash=identity_hash or params_hash(model, params),
            account=account,
            submitted_at=now if submitted_at is None else finite(submitted_at),
            updated_at=now,
            status=check_journal_status(status),
            server_status=server_status,
            outputs=urls_only(outputs),
            price_usd=finite(price_usd),
            error=error,
        )
        boot_s = boot_seconds() - (now - record.submitted_at)
        with self._transaction() as conn:
            # A row of the same task id is updated only when it is this identity's: a write never
            # replaces another task's row (the upsert's WHERE leaves it, and nothing changes).
            self.serialize(conn, account, record.params_hash)
            written = conn.execute(
                f"INSERT INTO tasks ({_TASK_ROW}) VALUES ({placeholders(_TASK_ROW)}) "
                f"ON CONFLICT (request_id) DO UPDATE SET {_UPSERT} "
                "WHERE tasks.identity = excluded.identity AND tasks.account = excluded.account",
                named(_TASK_ROW, (*task_values(record), BOOT_ID, boot_s)),
            ).rowcount
            if written != 1:
                raise TaskTakenError(
                    f"task {record.request_id} is already journaled for other inputs; its row was left as it is"
                )
            if release_intent:
                conn.execute(
                    "DELETE FROM intents WHERE account = :account AND identity = :identity",
                    {"account": account, "identity": record.params_hash},
                )
        self.maybe_prune()
        return record

    def update(self, request_id: str, **changes: Any) -> TaskRecord | None:
        """Change fields of an existing row (None if there is none); updated_at is set for you."""
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update record field(s): {', '.join(sorted(unknown))}")
        try:
            rid = check_request_id(request_id, ValueError)
        except ValueError:
            return None
        values: dict[str, Any] = {}
        for name, value in changes.items():
            if name == "status":
                values[name] = check_journal_status(value)
            elif name in ("outputs", "files"):
                items = urls_only(value) if name == "outputs" else tuple(str(f) for f in value)
                values[name] = json_text(list(items))
            elif name == "params":
                assert_no_key(value)
                values[name] = json_text(storable(dict(value)))
            elif name in ("price_usd", "updated_at"):
                values[name] = finite(value)
            elif name == "inference_ms":
                values[name] = None if value is None else int(finite(value))
            else:
                values[name] = E.redact(str(value))
        values.setdefault("updated_at", time.time())
        assignments = ", ".join(f"{name} = :{name}" for name in values)
        with self._db() as conn:
            cursor = conn.execute(
                f"UPDATE tasks SET {assignments} WHERE request_id = :rid", {**values, "rid": rid}
            )
            if cursor.rowcount == 0:
                return None
        return self.get(rid)

    # ------------------------------------------------------------------ intents (single-flight)

    def claim_intent(
        self, intent: Intent, *, max_age_s: float | None, reuse_statuses: Iterable[str]
    ) -> TaskRecord | Intent | None:
        """In one ``BEGIN IMMEDIATE`` transaction: a reusable task with this identity (returned; of
        any age when ``max_age_s`` is None), or someone else's intent row (returned), or else
        ``intent`` is inserted (None: go and POST). An unreadable row of this identity raises
        JournalError (it may be the paid task)."""
        with self._transaction() as conn:
            self.serialize(conn, intent.account, intent.identity)
            found = self._find(
                conn,
                intent.identity,
                max_age_s,
                account=intent.account,
                now=None,
                statuses=reuse_statuses,
            )
            if found is not None:
                return found
            existing = intent_from_row(
                conn.execute(
                    f"SELECT {INTENT_COLUMNS} FROM intents WHERE account = :account AND identity = :identity",
                    {"account": intent.account, "identity": intent.identity},
                ).fetchone()
            )
            if existing is not None:
                return existing
            row = named(_INTENT_ROW, (*intent_values(intent), BOOT_ID, boot_seconds()))
            # Claimed and leased on the journal's clock (the database's, in a farm).
            now = self.now(conn)
            row.update(claimed_at=now, lease_until=now + intent.lease_until - intent.claimed_at)
            conn.execute(f"INSERT INTO intents ({_INTENT_ROW}) VALUES ({placeholders(_INTENT_ROW)})", row)
            return None

    def get_intent(self, account: str, identity: str) -> Intent | None:
        with self._db() as conn:
            row = conn.execute(
                f"SELECT {INTENT_COLUMNS} FROM intents WHERE account = :account AND identity = :identity",
                {"account": account, "identity": identity},
            ).fetchone()
        return intent_from_row(row)

    def renew_intents(self, owner: str, lease_s: float, keys: Iterable[tuple[str, str]]) -> int:
        """Extend the lease of the intents ``owner`` is still submitting to ``lease_s`` from now on
        the journal's clock, for these (account, identity) keys only."""
        renewed = 0
        with self._db() as conn:
            lease_until = self.now(conn) + lease_s
            for account, identity in keys:
                renewed += conn.execute(
                    "UPDATE intents SET lease_until = :lease_until WHERE owner = :owner "
                    "AND state = 'submitting' AND account = :account AND identity = :identity",
                    {"lease_until": lease_until, "owner": owner, "account": account, "identity": identity},
                ).rowcount
        return renewed

    def set_intent_state(self, account: str, identity: str, owner: str, state: str) -> None:
        with self._db() as conn:
            conn.execute(
                "UPDATE intents SET state = :state, lease_until = 0 "
                "WHERE account = :account AND identity = :identity AND owner = :owner",
                {"state": state, "account": account, "identity": identity, "owner": owner},
            )

    def drop_intent(self, account: str, identity: str, owner: str | None = None) -> None:
        """Delete the intent row (only if ``owner`` holds it, when given)."""
        mine = "" if owner is None else " AND owner = :owner"
        with self._db() as conn:
            conn.execute(
                f"DELETE FROM intents WHERE account = :account AND identity = :identity{mine}",
                {"account": account, "identity": identity, "owner": owner},
            )

    # ------------------------------------------------------------------ housekeeping

    def prune(self, now: float | None = None, retention_s: float = RETENTION_S) -> int:
        """One DELETE: rows whose task was seen terminal and is older than the retention (its result
        is gone from the API). In-flight rows are never pruned. Intents go after the retention too."""
        args = {**clock_args(now), "retention": retention_s}
        terminal = ", ".join(f"'{s}'" for s in TERMINAL_JOURNAL_STATUSES)
        with self._db() as conn:
            removed = conn.execute(
                f"DELETE FROM tasks WHERE status IN ({terminal}) AND {age_sql('submitted_at')} > :retention",
                args,
            ).rowcount
            conn.execute(f"DELETE FROM intents WHERE {age_sql('claimed_at')} > :retention", args)
        if removed:
            log.info("WaveSpeed journal: pruned %d finished task(s) older than the 7-day retention", removed)
        return int(removed)

    def maybe_prune(self) -> None:
        """Prune at most once an hour per process; never fails the caller."""
        now = time.monotonic()
        if self._last_prune and now - self._last_prune < _PRUNE_EVERY_S:
            return
        self._last_prune = now
        try:
            self.prune()
        except Exception:
            log.debug("journal prune failed", exc_info=True)
