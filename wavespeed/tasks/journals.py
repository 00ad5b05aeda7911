"""The task journal as task calls use it: which journal, and best-effort updates.

Submit, Poll Result and Recent Tasks all go through here, so the journal's directory is resolved
the same way everywhere (env, the host's user folder, ~/.cache) and a journal problem never fails
a call that only wanted to note something.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from ..api.reply_types import Prediction
from ..core.vocabulary import TERMINAL_JOURNAL_STATUSES
from ..journal.farm.pg_journal import PostgresJournal, journal_url
from ..journal.task_journal import (
    STATUS_COMPLETED,
    STATUS_FAILED,
    STATUS_IN_FLIGHT,
    Journal,
    default_journal_dir,
)
from .farm_gate import task_finished

log = logging.getLogger("wavespeed")

_journals: dict[str, Journal] = {}
_journals_lock = threading.Lock()


def current_journal(user_dir: str | None = None) -> Journal:
    """The journal for the current settings (resolved on each call): the farm's PostgreSQL database
    when WAVESPEED_JOURNAL_URL names one, else the SQLite file in WAVESPEED_JOURNAL_DIR, the host's
    user folder ``user_dir`` or ~/.cache."""
    url = journal_url()
    key = url or str(default_journal_dir(user_dir))
    with _journals_lock:
        journal = _journals.get(key)
        if journal is None:
            journal = _journals[key] = PostgresJournal(url) if url else Journal(default_journal_dir(user_dir))
        return journal


def forget_journals() -> None:
    """Close and forget every open journal (as a restart would)."""
    with _journals_lock:
        for journal in _journals.values():
            journal.close()
        _journals.clear()


def journal_outcome(journal: Journal | None, prediction: Prediction) -> None:
    """Best effort: write a terminal (or progressed) server state into the task's record."""
    if journal is None:
        return
    if prediction.is_terminal:
        task_finished(journal, prediction.id)  # a farm's task slot frees for every worker
    try:
        if prediction.is_completed:
            journal.update(
                prediction.id,
                status=STATUS_COMPLETED,
                server_status=prediction.status,
                outputs=prediction.outputs,
                inference_ms=prediction.inference_ms,
                error="",
                note="",
            )
        elif prediction.is_failed:
            journal.update(
                prediction.id,
                status=STATUS_FAILED,
                server_status=prediction.status,
                error=prediction.error or "no reason given",
            )
        else:
            journal.update(prediction.id, server_status=prediction.status)
    except Exception:
        log.warning("WaveSpeed journal: could not update task %s", prediction.id, exc_info=True)


def journal_note(journal: Journal | None, request_id: str, **fields: Any) -> None:
    """Best effort: set fields of a task's record (e.g. failed with its error, or a wait note)."""
    if journal is None:
        return
    if fields.get("status") in TERMINAL_JOURNAL_STATUSES:
        task_finished(journal, request_id)
    try:
        journal.update(request_id, **fields)
    except Exception:
        log.warning("WaveSpeed journal: could not update task %s", request_id, exc_info=True)


def open_journal(user_dir: str | None = None) -> Journal | None:
    """Best effort, for readers and notes (Poll Result): the journal, or None with one log line.
    A submit never uses this: PaidSubmit.prepare fails closed instead (paid/prepared.py)."""
    try:
        return current_journal(user_dir)
    except Exception as exc:
        log.warning("WaveSpeed journal unavailable (%s); results are not journaled", exc)
        return None


def journal_status(prediction: Prediction) -> str:
    if prediction.is_completed:
        return STATUS_COMPLETED
    if prediction.is_failed:
        return STATUS_FAILED
    return STATUS_IN_FLIGHT
