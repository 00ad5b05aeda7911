"""The paid path: ONE call per submit, ``submit_task``, which every paid node (Generate, Edit,
Multi-Reference, Batch) makes, synchronously, in one worker thread from its start to its end.

``PaidSubmit.prepare`` (prepared.py) validates the request and gathers what one submit needs
(request, input identity, account, client, journal, the latched Cancel) once; ``submit_task`` then
decides, in this order and in this one place:

1. Cancel: after a Cancel, no POST starts, ever (the context's check, latched; a Batch shares one
   latch between its tasks; the account's scheduler asks it again right before the POST).
2. Fixed seed and not ``force_rerun``: single-flight. Identical submits in this process share one
   task (``FLIGHTS``); across processes the journal's intent row is claimed before the POST (see
   wavespeed/journal/singleflight.py). A journaled task that is still there (WaveSpeed is asked,
   whatever its age) is handed back (no charge), and so is one paid here whose row the journal has
   not taken yet (unrecorded.py); an identical submit that was interrupted and may have been paid
   is looked for in the history (reuse.py), matched exactly on what it sent.
3. The journal fails closed: when it cannot say whether a fixed-seed task was already paid (locked
   past its wait, read-only, full, corrupt), nothing is submitted; its one line says what is wrong
   with which file and that ``force_rerun`` pays without it.
4. The price, the POST and the journal record (payment.py).

Batch is a loop over this call (it checks the whole price first with ``afford``, payment.py).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace

from ...api.kontext_request import KontextRequest
from ...core import errors as E
from ...journal.singleflight import Flights, acquire, new_intent
from ...journal.sqlite_file import JournalError, journal_failure
from ...journal.task_journal import (
    STATUS_COMPLETED,
    STATUS_IN_FLIGHT,
    Intent,
    Journal,
    TaskRecord,
    params_hash,
)
from ..accounts import forget_clients
from ..context import TaskContext
from ..handle import TaskHandle, short_id
from ..journals import forget_journals
from .payment import SESSION_SPEND, post
from .prepared import PaidSubmit
from .reuse import check_reusable, recover
from .unrecorded import UNRECORDED, key_of

# An identical submit waits this long for another process's POST (a sync-mode inference included).
INTENT_WAIT_S = 240.0

FLIGHTS: Flights[TaskHandle] = Flights()


def submit_task(request: KontextRequest, context: TaskContext, *, force_rerun: bool = False) -> TaskHandle:
    """Validate, then reuse, share or pay for one task, as the module docstring says. Blocks."""
    paid = PaidSubmit.prepare(request, context, force_rerun=force_rerun)
    paid.cancel.stop_if_set()
    if not paid.single_flight:
        return post(paid, None)  # a new image every time: pay for a new task
    if paid.journal is None:  # prepare() raises for a fixed seed; kept for type checkers
        raise journal_failure(None, RuntimeError("no journal"))
    key = (paid.journal.label, paid.account, paid.identity)
    while True:
        flight, leader = FLIGHTS.join(key)
        if leader:
            break
        shared, error = flight.outcome(paid.cancel)
        if error is not None and (isinstance(error, E.CancelledError) or not isinstance(error, Exception)):
            paid.cancel.stop_if_set()
            continue  # the leader was cancelled, not us: lead a new attempt
        if error is not None:
            raise error
        assert shared is not None
        paid.context.status.set(
            1.0, f"shared task {short_id(shared.request_id)} with an identical node (no charge)"
        )
        return replace(shared, price_usd=0.0)
    try:
        handle = _single_flight(paid, paid.journal)
    except BaseException as exc:
        flight.finish(error=exc)
        raise
    else:
        flight.finish(result=handle)
    finally:
        FLIGHTS.land(key, flight)
    return handle


def _single_flight(paid: PaidSubmit, journal: Journal) -> TaskHandle:
    """Reuse a journaled task, wait for an identical submit elsewhere, recover an interrupted one,
    or claim the intent and POST. A journal that cannot answer stops here (fails closed)."""
    request = paid.request
    payload_hash = params_hash(request.model, paid.params)
    intent = new_intent(paid.account, paid.identity, request.model, payload_hash, paid.params)
    for _ in range(3):  # a reuse candidate that turns out gone is marked so; then claim again
        got = _claim(paid, journal, intent)
        if got is None:
            return post(paid, intent)
        if isinstance(got, TaskHandle):
            paid.context.status.set(1.0, f"reused task {got.request_id} (no charge; not journaled yet)")
            return got
        if isinstance(got, Intent):
            return recover(paid, journal, got)
        # An in-flight record is a task already paid for whose waiter died (crash, restart,
        # timeout): identical inputs wait for that task instead of paying for a second one.
        still_there, prediction = check_reusable(paid, journal, got.request_id)
        if still_there:
            paid.context.status.set(1.0, f"reused task {short_id(got.request_id)} (no charge)")
            return paid.reused(got.request_id, prediction, got.submitted_at)
    raise JournalError(
        "WaveSpeed journal: identical earlier tasks kept turning out gone; turn on force_rerun to submit anew.",
    )


def _claim(paid: PaidSubmit, journal: Journal, intent: Intent) -> TaskRecord | Intent | TaskHandle | None:
    """A task paid here whose row is still owed, a journaled task, an interrupted intent, or None:
    the intent is ours (waits while another process holds it). Raises JournalError when the journal
    cannot answer: nothing was submitted, and the line says which file, what is wrong, how to go on."""
    owed_key = key_of(journal, paid.account, paid.identity)
    owed = UNRECORDED.task(owed_key)
    if owed is not None:  # paid here, its row not yet written: reused from memory at once
        with contextlib.suppress(Exception):
            UNRECORDED.land(owed_key)  # (else the retry thread keeps at it)
        return owed

    def on_wait(other: Intent) -> None:
        paid.context.status.set(
            0.02, f"an identical task is being submitted by another ComfyUI (pid {other.pid})…"
        )

    try:
        UNRECORDED.land(owed_key)  # a release of ours still owed: the journal must take it first
        return acquire(
            journal,
            intent,
            # Any age: a journaled task is asked for (check_reusable) before paying again,
            # so neither the 7-day retention nor a wall-clock jump decides it on a guess.
            max_age_s=None,
            reuse_statuses=(STATUS_COMPLETED, STATUS_IN_FLIGHT),
            deadline=time.monotonic() + INTENT_WAIT_S,
            cancel=paid.cancel,
            on_wait=on_wait,
        )
    except (E.WaveSpeedError, KeyboardInterrupt, SystemExit):
        raise  # a JournalError (classified), a Cancel, a wait that timed out
    except Exception as exc:  # anything else from the disk: the journal cannot answer
        raise journal.failure(exc) from None


def reset_session_state() -> None:
    """Forget everything held in memory (journals, clients, flights, session spend, journal writes
    still owed), as a restart would."""
    forget_journals()
    forget_clients()
    FLIGHTS.clear()
    SESSION_SPEND.reset()
    UNRECORDED.clear()
