"""Identical inputs, one task: shared in this process, claimed across processes, reused across restarts.

``share_or_pay`` is the paid path's single-flight branch (a fixed seed, not ``force_rerun``; see
submit.py). Identical submits in this process share one task (``FLIGHTS``); across processes the
journal's intent row is claimed before the POST (wavespeed/journal/singleflight.py). A journaled task
that is still there (WaveSpeed is asked, whatever its age) is handed back (no charge), and so is one
paid here whose row the journal has not taken yet (unrecorded.py); an identical submit that was
interrupted and may have been paid is looked for in the history (reuse.py), matched exactly on what
it sent. A journal that cannot answer stops it: nothing is submitted (fails closed).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace

from ...core import errors as E
from ...journal.singleflight import Flights, acquire, new_intent
from ...journal.sqlite_file import JournalError
from ...journal.task_journal import STATUS_COMPLETED, STATUS_IN_FLIGHT, Intent, Journal, TaskRecord
from ..handle import TaskHandle, short_id
from .payment import post
from .prepared import PaidSubmit
from .reuse import check_reusable, recover
from .unrecorded import UNRECORDED, key_of

# An identical submit waits this long for another process's POST (a sync-mode inference included).
INTENT_WAIT_S = 240.0

FLIGHTS: Flights[TaskHandle] = Flights()


def share_or_pay(paid: PaidSubmit, journal: Journal) -> TaskHandle:
    """Share an identical submit of this process, else reuse, recover or pay (``_single_flight``)."""
    key = (journal.label, paid.account, paid.identity)
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
        handle = _single_flight(paid, journal)
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
    for _ in range(3):  # a reuse candidate that turns out gone is marked so; then claim again
        intent, got = _claim(paid, journal)
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


def _claim(paid: PaidSubmit, journal: Journal) -> tuple[Intent, TaskRecord | Intent | TaskHandle | None]:
    """This process's intent, and what came of claiming it: a task paid here whose row is still
    owed, a journaled task, an interrupted intent, or None: the intent is ours (waits while another
    process holds it). Raises JournalError when the journal cannot answer: nothing was submitted,
    and the line says which file, what is wrong, how to go on."""
    owed_key = key_of(journal, paid.account, paid.identity)
    intent = new_intent(paid.account, paid.identity, paid.request.model, paid.payload_hash, paid.params)
    owed = UNRECORDED.task(owed_key)
    if owed is not None:  # paid here, its row not yet written: reused from memory at once
        with contextlib.suppress(Exception):
            UNRECORDED.land(owed_key)  # (else the retry thread keeps at it)
        return intent, owed

    def on_wait(other: Intent) -> None:
        paid.context.status.set(
            0.02, f"an identical task is being submitted by another ComfyUI (pid {other.pid})…"
        )

    try:
        UNRECORDED.land(owed_key)  # a release of ours still owed: the journal must take it first
        return intent, acquire(
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
