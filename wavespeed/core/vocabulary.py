"""The names every layer shares, defined once: the Cancel callback, the request-id check and the
task statuses (the server's and the journal's).

Statuses are ``str`` Enums: a member compares equal to the plain string SQLite stores and the API
sends, so a value read back from either needs no conversion to be compared. The server's
vocabulary is open (it also says ``pending``, ``queued``, ...): the members name the six the
official CLI cites from the server's model, plus ``deleted`` (a third-party SDK; WAVESPEED_API.md
12.3), and the frozensets group every spelling we have seen by meaning.
This module imports only the error types: the node classes load it at ComfyUI start-up.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import Enum

from .errors import InvalidRequestError, redact

CancelCheck = Callable[[], bool]
"""Polled by long calls; True means the user pressed Cancel (or nobody waits any more)."""

_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")


def is_request_id(value: object) -> bool:
    """A valid WaveSpeed task id: 1-128 ASCII letters, digits, '-' or '_', holding no piece of the
    API key (a server that names the key as a task id would have it stored and shown: refused)."""
    return isinstance(value, str) and _REQUEST_ID_RE.fullmatch(value) is not None and redact(value) == value


def check_request_id(value: object, error: type[Exception] = InvalidRequestError) -> str:
    """The request id with surrounding white space stripped.

    Args:
        value: what a user pasted, a reply carried or a journal row holds.
        error: what to raise: the client's InvalidRequestError by default; the journal, whose
            rows are parsed totally, asks for ValueError.
    Returns:
        The stripped id.
    Raises:
        InvalidRequestError (or ``error``): unless it is 1-128 ASCII letters, digits, '-' or '_'.
    """
    rid = value.strip() if isinstance(value, str) else ""
    if not is_request_id(rid):
        shown = repr(value) if redact(rid) == rid else "a text holding the API key"
        raise error(
            f"{shown} is not a WaveSpeed request id (expected letters and digits, e.g. 32 hex characters)."
        )
    return rid


class _StrEnum(str, Enum):
    """``str()`` and ``format()`` give the value, as ``enum.StrEnum`` does (Python 3.11+ only)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class TaskStatus(_StrEnum):
    """A task's status as the WaveSpeed API reports it. ``cancelled``, ``timeout`` and ``deleted``
    end a task like ``failed`` does, each with its own line (api/reply_types.py, Prediction.failure)."""

    CREATED = "created"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    DELETED = "deleted"


QUEUED_STATUSES = frozenset({TaskStatus.CREATED, "pending", "queued"})
"""Accepted but not started (``created``: held back by the account's concurrency limit)."""
PENDING_STATUSES = QUEUED_STATUSES | {TaskStatus.PROCESSING, "running"}
FAILED_STATUSES = frozenset(
    {TaskStatus.FAILED, TaskStatus.CANCELLED, "canceled", TaskStatus.TIMEOUT, TaskStatus.DELETED}
)
"""Terminal without outputs: the poller stops and the task's own line is raised."""


class JournalStatus(_StrEnum):
    """A task's status in our journal."""

    IN_FLIGHT = "in_flight"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"  # the server no longer knows the task (older than 7 days, or another account)


TERMINAL_JOURNAL_STATUSES = (JournalStatus.COMPLETED, JournalStatus.FAILED, JournalStatus.EXPIRED)


def check_journal_status(status: object) -> JournalStatus:
    """The journal status named by ``status``; ValueError (naming the valid ones) otherwise."""
    try:
        return JournalStatus(status)
    except ValueError:
        names = ", ".join(s.value for s in JournalStatus)
        raise ValueError(f"unknown task status {status!r}; use one of {names}") from None
