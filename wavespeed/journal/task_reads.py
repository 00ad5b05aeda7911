"""Reading the journal's task rows, totally: one row, the newest rows, the fixed-seed identity
lookup (one indexed query) and the inference times the scheduler learns from.

A row that does not convert (1e400, NaN, deep nesting, a foreign schema) is skipped with one
warning per row in listings; it never disables the other rows. The identity lookup is the
exception: an unreadable row of the very inputs looked up may be their paid task, so the lookup
fails closed (one line naming the file and ``force_rerun``) rather than guess. Ages are measured as
rows.age_sql says (boot clock for rows of this boot, wall clock otherwise). Writing is in
task_journal.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from ..core import errors as E
from ..core.vocabulary import check_request_id
from .rows import TASK_COLUMNS, age_sql, clock_args, record_from_row, status_filter
from .sqlite_file import JournalFile, Statements
from .task_records import STATUS_COMPLETED, STATUS_IN_FLIGHT, TaskRecord, finite

log = logging.getLogger("wavespeed")

RETENTION_S = 7 * 86400  # WaveSpeed keeps predictions and their outputs for 7 days
UNKNOWN_HOLDER = ("", "<unreadable>")  # a row whose account or identity cannot be read
# What converting a damaged row raises (rows.record_from_row is total over these).
UNREADABLE = (ValueError, E.InvalidRequestError, TypeError, OverflowError, RecursionError, MemoryError)


def _newest_first(record: TaskRecord) -> tuple[float, str]:
    return (record.submitted_at, record.request_id)


class TaskReader(JournalFile):
    """The read side of the journal (Journal adds writing, intents and pruning)."""

    def get(self, request_id: str) -> TaskRecord | None:
        try:
            rid = check_request_id(request_id, ValueError)
        except ValueError:
            return None
        with self._db() as conn:
            row = conn.execute(
                f"SELECT {TASK_COLUMNS} FROM tasks WHERE request_id = :rid", {"rid": rid}
            ).fetchone()
        return None if row is None else self._convert(row)

    def holder(self, request_id: str) -> tuple[str, str] | None:
        """(account, identity) whose row holds this task id; None when no row does. Only those two
        columns are read, so a row damaged elsewhere still tells whose it is; an unreadable pair
        reads as ``UNKNOWN_HOLDER`` (someone's, never ours)."""
        try:
            rid = check_request_id(request_id, ValueError)
        except ValueError:
            return UNKNOWN_HOLDER
        with self._db() as conn:
            row = conn.execute(
                "SELECT account, identity FROM tasks WHERE request_id = :rid", {"rid": rid}
            ).fetchone()
        if row is None:
            return None
        account, identity = row
        return (
            (account, identity) if isinstance(account, str) and isinstance(identity, str) else UNKNOWN_HOLDER
        )

    def recent(self, limit: int = 50, statuses: Iterable[str] | None = None) -> list[TaskRecord]:
        """Newest first; optionally only the given statuses."""
        where, args = status_filter(statuses)
        return self._select(
            f"SELECT {TASK_COLUMNS} FROM tasks {where} ORDER BY submitted_at DESC, request_id DESC",
            args,
            limit,
        )

    def in_flight(self) -> list[TaskRecord]:
        return self.recent(limit=10**9, statuses=(STATUS_IN_FLIGHT,))

    def find_completed(
        self,
        params_hash: str,
        max_age_s: float | None = RETENTION_S,
        *,
        account: str | None = None,
        now: float | None = None,
        statuses: Iterable[str] = (STATUS_COMPLETED,),
    ) -> TaskRecord | None:
        """The newest task with this identity in one of ``statuses``, younger than max_age_s (None:
        any age), by one indexed query. Raises JournalError when a row of this identity is
        unreadable (it may be the paid task: the caller must not pay again on a guess)."""
        return self._find(None, params_hash, max_age_s, account=account, now=now, statuses=statuses)

    def _find(
        self,
        conn: Statements | None,
        identity: str,
        max_age_s: float | None,
        *,
        account: str | None,
        now: float | None,
        statuses: Iterable[str],
    ) -> TaskRecord | None:
        if conn is None:
            with self._db() as own:
                return self._find(own, identity, max_age_s, account=account, now=now, statuses=statuses)
        args: dict[str, Any] = {**clock_args(now), "identity": identity}
        where = "identity = :identity" + ("" if account is None else " AND account = :account")
        sql = f"SELECT {TASK_COLUMNS}, {age_sql('submitted_at')} FROM tasks WHERE {where}"
        if account is not None:
            args["account"] = account
        wanted = frozenset(statuses)
        best: TaskRecord | None = None
        for *row, age in conn.execute(sql, args):  # every row of these inputs: few, all read
            try:
                record = record_from_row(tuple(row))
            except UNREADABLE as exc:
                raise self.unreadable(row[0], exc) from None
            if record.status not in wanted or (max_age_s is not None and not age < max_age_s):
                continue
            if best is None or _newest_first(record) > _newest_first(best):
                best = record
        return best

    def inference_times(self, model: str, limit: int = 200) -> list[float]:
        """Inference seconds of the most recent completed tasks of ``model`` (for the scheduler)."""
        with self._db() as conn:
            rows = conn.execute(
                "SELECT inference_ms FROM tasks WHERE model = :model AND status = :status "
                "AND inference_ms IS NOT NULL ORDER BY updated_at DESC LIMIT :limit",
                {"model": model, "status": STATUS_COMPLETED.value, "limit": max(0, limit)},
            ).fetchall()
        out: list[float] = []
        for (ms,) in rows:
            try:
                seconds = finite(ms) / 1000.0
            except ValueError:
                continue
            if seconds >= 0:
                out.append(seconds)
        return out

    def _select(
        self, sql: str, args: Mapping[str, Any], limit: int, *, conn: Statements | None = None
    ) -> list[TaskRecord]:
        """Run a task query, converting rows until ``limit`` good ones; bad rows are skipped."""
        records: list[TaskRecord] = []
        if limit <= 0:
            return records
        if conn is None:
            with self._db() as own:
                return self._select(sql, args, limit, conn=own)
        for row in conn.execute(sql, dict(args)):
            record = self._convert(row)
            if record is not None:
                records.append(record)
                if len(records) >= limit:
                    break
        return records

    def _convert(self, row: tuple[Any, ...]) -> TaskRecord | None:
        try:
            return record_from_row(row)
        except UNREADABLE as exc:
            rid = str(row[0])[:64]
            if rid not in self._warned:
                self._warned.add(rid)
                log.warning(
                    "WaveSpeed journal: skipping unreadable task row %s (%s)", rid, type(exc).__name__
                )
            return None
