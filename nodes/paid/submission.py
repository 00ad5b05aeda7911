"""Submitting a Kontext task from a node: the paid path in one call, and the journal helpers the
other nodes import from here.

Every paid node goes through ``PaidSubmit`` (paid_path.py): validation, single-flight, the journal
that fails closed, the Cancel rule, the price, the POST and the journal record are decided there
once; the POST itself is paid_post.py. ``submit_task`` is the one-call form Generate and Edit use;
Batch prepares one PaidSubmit per task with a Cancel rule shared by the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable

from ...wavespeed import KontextRequest, errors as E
from ..shared.task_value import TaskHandle
from .journal_glue import current_journal, forget_journals, journal_note, journal_outcome, open_journal
from .paid_path import FLIGHTS, INTENT_WAIT_S, CancelRule, PaidSubmit, submit
from .paid_post import SESSION_SPEND, was_not_accepted
from .unrecorded import UNRECORDED

__all__ = [
    "E",
    "INTENT_WAIT_S",
    "SESSION_SPEND",
    "CancelRule",
    "PaidSubmit",
    "current_journal",
    "journal_note",
    "journal_outcome",
    "open_journal",
    "reset_session_state",
    "submit_task",
]

_was_not_accepted = was_not_accepted  # the name older tests and notes use


def reset_session_state() -> None:
    """Forget everything held in memory (journal caches, session spend, journal writes still owed),
    as a restart would."""
    forget_journals()
    FLIGHTS.clear()
    SESSION_SPEND.reset()
    UNRECORDED.clear()


async def submit_task(
    request: KontextRequest,
    node_id: str | None,
    *,
    force_rerun: bool = False,
    on_rate_wait: Callable[[str], None] | None = None,
) -> TaskHandle:
    """Validate, then reuse, share or pay for one task (see paid_path.py)."""
    paid = PaidSubmit.prepare(request, node_id, force_rerun=force_rerun, on_rate_wait=on_rate_wait)
    return await submit(paid)
