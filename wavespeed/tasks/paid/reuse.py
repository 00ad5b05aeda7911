"""Reusing a task already paid for: check a journaled one is still there, or find an interrupted one.

``check_reusable`` asks WaveSpeed once whether a journaled task can still be fetched before a
re-queue reuses it. ``recover`` handles an identical submit that was interrupted (process killed,
connection lost) and may have been paid without its id reaching us: it looks in the account's
history (wavespeed/journal/history_search.py) and journals what it finds, or raises one line saying so.
"""

from __future__ import annotations

import logging
import time

from ...api.reply_types import Prediction
from ...core import errors as E
from ...journal.singleflight import clock_text, interrupted_message
from ...journal.task_journal import STATUS_EXPIRED, Intent, Journal
from ..handle import TaskHandle, short_id
from ..journals import journal_note, journal_outcome, journal_status
from .prepared import PaidSubmit
from .unrecorded import UNRECORDED, key_of

log = logging.getLogger("wavespeed")

# The one history lookup of a recovery (the history call and at most a few /result checks) ends by then.
LOOKUP_S = 60.0


def check_reusable(paid: PaidSubmit, journal: Journal, request_id: str) -> tuple[bool, Prediction | None]:
    """Ask WaveSpeed whether a journaled result is still there before reusing it (one GET, which
    Poll Result then skips). Only a definite answer (unknown task, or failed) means a new task;
    if the check itself fails, the result is reused anyway and Poll Result retries the fetch."""
    status = paid.context.status
    status.request_id = request_id  # a Cancel now names the earlier task: it is paid, and still there
    paid.context.status.set(0.02, f"checking earlier task {request_id[:8]}…")
    try:
        prediction = paid.client.get_result(request_id, deadline=time.monotonic() + 30.0, cancel=paid.cancel)
    except E.NotFoundError as exc:
        journal_note(journal, request_id, status=STATUS_EXPIRED, error=exc.message)
        return False, None
    except E.CancelledError:
        raise
    except E.WaveSpeedError as exc:
        log.info("could not check task %s before reusing it (%s); reusing it", request_id, exc)
        return True, None
    finally:
        status.request_id = None
    if prediction.is_failed:
        journal_outcome(journal, prediction)
        return False, None
    return True, prediction if prediction.is_completed else None


def recover(paid: PaidSubmit, journal: Journal, stale: Intent) -> TaskHandle:
    """An identical submit was interrupted and may have been paid: find its task, or say so.

    The interrupted intent keeps the payload that was sent (its uploaded image URLs included): a
    candidate matches only on those values, one journaled for other inputs is never taken, and the
    journal write that takes it never replaces another task's row."""
    paid.context.status.set(
        0.02, f"looking for an interrupted identical task from {clock_text(stale.claimed_at)}…"
    )
    request = paid.request
    sent = stale.payload  # None in rows from before the payload was kept: the hash alone matches
    mine = (paid.account, paid.identity)

    from ...journal.history_search import Unconfirmed, find_submitted  # only on this rare path
    from ...journal.task_journal import TaskTakenError

    def taken(request_id: str) -> bool:
        holder = journal.holder(request_id)
        return holder is not None and holder != mine

    def claim(found: Prediction) -> bool:
        """Journal the found task under this identity; False when another identity holds it (a
        write the journal cannot take now is owed until it lands: the task is ours either way)."""

        def write() -> None:
            journal.record_submitted(
                found.id,
                model=request.model,
                params=sent if sent is not None else paid.params,
                price_usd=request.price_usd,
                account=paid.account,
                status=journal_status(found),
                server_status=found.status,
                outputs=found.outputs if found.is_completed else (),
                error=found.error if found.is_failed else "",
                submitted_at=stale.claimed_at,
                identity_hash=paid.identity,
                release_intent=True,
            )

        try:
            write()
        except TaskTakenError:
            return False
        except Exception as exc:
            log.warning(
                "WaveSpeed journal: recovered task %s not journaled yet (%s); retrying", found.id, exc
            )
            owed = paid.reused(found.id, found, stale.claimed_at)
            UNRECORDED.keep(key_of(journal, paid.account, paid.identity), write, task=owed)
        return True

    found: Prediction | Unconfirmed | None
    try:
        found = find_submitted(
            paid.client,
            model=request.model,
            payload_hash=stale.payload_hash,
            since=stale.claimed_at,
            deadline=time.monotonic() + LOOKUP_S,
            cancel=paid.cancel,
            sent=sent,
            taken=taken,
            claim=claim,
        )
    except E.CancelledError:
        raise
    except E.WaveSpeedError as exc:
        log.info("WaveSpeed history lookup failed: %s", exc)
        found = None
    if isinstance(found, Unconfirmed):  # candidates, but WaveSpeed echoes no inputs to match on
        raise E.SubmitUncertainError(
            f"An identical task interrupted at {clock_text(stale.claimed_at)} may have been paid; "
            f"WaveSpeed does not echo its inputs, so check {found.text()}: paste the right id into "
            "Poll Result, or turn on force_rerun to pay again."
        )
    if found is None:
        raise E.SubmitUncertainError(interrupted_message(stale))
    paid.context.status.set(
        1.0, f"found interrupted task {short_id(found.id)} in WaveSpeed history (no charge)"
    )
    return paid.reused(found.id, found, stale.claimed_at)
