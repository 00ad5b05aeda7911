"""How the journal's rows are laid out and read back: the schema, the clocks that age a row, and a
total conversion of a row into a record (garbage raises ValueError-like errors, never anything else
the caller would not catch).

Ages: a row written since the last boot carries the boot id and ``CLOCK_BOOTTIME`` at its
submission, so its age is measured on that clock and a wall-clock jump changes nothing; other rows
(an earlier boot, imported records, systems without a boot clock) are aged by the wall clock. The
boot id and the boot clock come as a pair: on macOS and Windows (no /proc, no ``CLOCK_BOOTTIME``) or
where either is missing, the boot id is "" and every row is aged by the wall clock.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from ..core import errors as E
from ..core.vocabulary import JournalStatus, check_journal_status, check_request_id
from .task_records import Intent, TaskRecord, finite, urls_only

_STATUS_NAMES = frozenset(s.value for s in JournalStatus)

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    request_id    TEXT PRIMARY KEY,
    model         TEXT NOT NULL,
    identity      TEXT NOT NULL,
    account       TEXT NOT NULL DEFAULT '',
    params        TEXT NOT NULL DEFAULT '{}',
    submitted_at  REAL NOT NULL,
    updated_at    REAL NOT NULL,
    status        TEXT NOT NULL,
    server_status TEXT NOT NULL DEFAULT '',
    outputs       TEXT NOT NULL DEFAULT '[]',
    files         TEXT NOT NULL DEFAULT '[]',
    price_usd     REAL NOT NULL DEFAULT 0,
    error         TEXT NOT NULL DEFAULT '',
    note          TEXT NOT NULL DEFAULT '',
    inference_ms  INTEGER,
    boot_id       TEXT NOT NULL DEFAULT '',
    boot_s        REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tasks_by_identity ON tasks (identity, account, submitted_at);
CREATE INDEX IF NOT EXISTS tasks_by_time ON tasks (submitted_at);
CREATE TABLE IF NOT EXISTS intents (
    account      TEXT NOT NULL,
    identity     TEXT NOT NULL,
    model        TEXT NOT NULL,
    payload_hash TEXT NOT NULL,
    claimed_at   REAL NOT NULL,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    owner        TEXT NOT NULL,
    lease_until  REAL NOT NULL,
    state        TEXT NOT NULL,
    boot_id      TEXT NOT NULL DEFAULT '',
    boot_s       REAL NOT NULL DEFAULT 0,
    payload      TEXT NOT NULL DEFAULT '',
    UNIQUE (account, identity)
);
"""
# Columns added since the first schema, added to older files when they are opened.
ADDED_COLUMNS = {"intents": {"payload": "TEXT NOT NULL DEFAULT ''"}}

TASK_COLUMNS = (
    "request_id, model, identity, account, params, submitted_at, updated_at, status, server_status, "
    "outputs, files, price_usd, error, note, inference_ms"
)


def column_names(columns: str) -> list[str]:
    return [name.strip() for name in columns.split(",")]


def placeholders(columns: str) -> str:
    """``:a, :b, ...`` for the columns: named parameters, which both sqlite3 and SQLAlchemy take."""
    return ", ".join(f":{name}" for name in column_names(columns))


def named(columns: str, values: Iterable[Any]) -> dict[str, Any]:
    return dict(zip(column_names(columns), values, strict=True))


# ---------------------------------------------------------------------- clocks


BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"


def read_boot_id(path: str = BOOT_ID_FILE) -> str:
    """This boot's id (Linux), or "" where it or the boot clock it pairs with is missing: a boot id
    without ``CLOCK_BOOTTIME`` would age every row of this boot 0 s old."""
    if getattr(time, "CLOCK_BOOTTIME", None) is None:
        return ""
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read(64).strip()
    except (OSError, ValueError):
        return ""


BOOT_ID = read_boot_id()


def boot_seconds() -> float:
    """Seconds since boot, suspend included (Linux ``CLOCK_BOOTTIME``); 0 where there is none."""
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    if not BOOT_ID or clock is None:
        return 0.0
    return time.clock_gettime(clock)


def age_sql(column: str) -> str:
    """SQL for a row's age in seconds: on the boot clock when written since this boot, else wall."""
    return f"(CASE WHEN boot_id != '' AND boot_id = :boot THEN :boot_now - boot_s ELSE :now - {column} END)"


def clock_args(now: float | None = None) -> dict[str, Any]:
    wall = time.time() if now is None else now
    return {"boot": BOOT_ID, "boot_now": boot_seconds(), "now": wall}


# ---------------------------------------------------------------------- rows


INTENT_COLUMNS = (
    "account, identity, model, payload_hash, claimed_at, host, pid, owner, lease_until, state, payload"
)


def json_text(value: object) -> str:
    # Last line of defence: a registered secret (the API key) never reaches the disk.
    return E.redact(json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")))


def task_values(r: TaskRecord) -> tuple[Any, ...]:
    return (
        r.request_id,
        r.model,
        r.params_hash,
        r.account,
        json_text(r.params),
        r.submitted_at,
        r.updated_at,
        r.status,
        r.server_status,
        json_text(list(r.outputs)),
        json_text(list(r.files)),
        r.price_usd,
        E.redact(r.error),
        E.redact(r.note),
        r.inference_ms,
    )


def text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def record_from_row(row: tuple[Any, ...]) -> TaskRecord:
    (rid, model, identity, account, params, submitted, updated, status, server_status) = row[:9]
    outputs, files, price, error, note, inference = row[9:]
    params_value = json.loads(text(params))
    outputs_value = json.loads(text(outputs))
    files_value = json.loads(text(files))
    if not isinstance(params_value, dict) or not isinstance(outputs_value, list):
        raise ValueError("params or outputs of the wrong type")
    json.dumps(params_value, allow_nan=False)  # nesting too deep or 1e400 inside: RecursionError / ValueError
    return TaskRecord(
        request_id=check_request_id(rid, ValueError),
        model=text(model),
        params_hash=text(identity),
        account=text(account),
        params=params_value,
        submitted_at=finite(submitted),
        updated_at=finite(updated),
        status=check_journal_status(status),
        server_status=text(server_status),
        outputs=urls_only(outputs_value),
        files=tuple(str(f) for f in files_value) if isinstance(files_value, list) else (),
        price_usd=finite(price),
        error=text(error),
        note=text(note),
        inference_ms=None if inference is None else int(finite(inference)),
    )


def status_filter(statuses: Iterable[str] | None) -> tuple[str, dict[str, Any]]:
    if statuses is None:
        return "", {}
    wanted = [s for s in statuses if s in _STATUS_NAMES]
    if not wanted:
        return "WHERE 1 = 0", {}
    names = [f"s{i}" for i in range(len(wanted))]
    return f"WHERE status IN ({', '.join(':' + n for n in names)})", dict(zip(names, wanted, strict=True))


def intent_values(i: Intent) -> tuple[Any, ...]:
    return (
        i.account,
        i.identity,
        i.model,
        i.payload_hash,
        i.claimed_at,
        i.host,
        i.pid,
        i.owner,
        i.lease_until,
        i.state,
        "" if i.payload is None else json_text(i.payload),
    )


def _payload(value: object) -> dict[str, Any] | None:
    """An intent's payload column: the JSON object sent, or None (absent or unreadable: then the
    intent is matched on its hash alone)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = json.loads(value)
        json.dumps(parsed, allow_nan=False)  # too deep, or 1e400 inside: unreadable
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def intent_from_row(row: tuple[Any, ...] | None) -> Intent | None:
    if row is None:
        return None
    try:
        account, identity, model, payload_hash, claimed, host, pid, owner, lease, state, payload = row
        return Intent(
            account=text(account),
            identity=text(identity),
            model=text(model),
            payload_hash=text(payload_hash),
            claimed_at=finite(claimed),
            host=text(host),
            pid=int(pid),
            owner=text(owner),
            lease_until=finite(lease),
            state=text(state),
            payload=_payload(payload),
        )
    except (ValueError, TypeError, OverflowError):
        # A garbage intent row counts as an interrupted submit of unknown time (never as "free").
        return Intent("", "", "", "", 0.0, "", 0, "", 0.0, "uncertain")
