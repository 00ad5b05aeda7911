"""The paying step of the paid path (submit.py): book the price, POST once, journal the task.

* The price is booked against ``WAVESPEED_SESSION_BUDGET_USD`` (and, in a farm, against
  ``WAVESPEED_FARM_BUDGET_USD`` in its database: tasks/farm_gate.py) before any request
  (BudgetExceededError), and given back only when the submit provably created no task: nothing was
  sent, or WaveSpeed itself refused it (the client's rule, wavespeed/api/replies.py). A submit that
  may have created a task (a 5xx, a gateway page, a broken connection) keeps its price, leaves a
  fixed-seed intent 'uncertain' (the next identical queue looks in the history) and says in one line
  what queuing again does.
* The POST goes through the account's scheduler (accounts.py: a 429 is waited out as status text),
  which asks the submit's Cancel rule right before it: after a Cancel no POST starts.
* The accepted task is journaled right after the reply, in the submit's own worker thread, before
  anyone waits on it, so even a Cancel or a crash a moment later leaves it recoverable. The intent row goes in the
  same transaction; a submit that may have been paid without an id leaves it 'uncertain'.
* A journal write that fails there (the journal locked by another process past its wait, a full
  disk) is owed, not dropped (unrecorded.py): the id stays in memory and in the node's output, the
  write is retried until it lands, and an identical re-queue here reuses the task meanwhile.
* A Batch checks its whole price first (``afford``): nothing is submitted when the session budget
  (or the farm's) cannot cover all of it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...api.kontext_request import KontextRequest
from ...api.reply_types import Prediction
from ...core import errors as E
from ...journal.farm.account_limits import ENV_FARM_BUDGET
from ...journal.singleflight import LEASES, STATE_UNCERTAIN, owner_alive
from ...journal.task_journal import STATUS_IN_FLIGHT, Intent, TaskTakenError
from ...settings.session_budget import SessionSpend, session_budget_usd
from .. import accounts
from ..farm_gate import farm_covers, farm_gate, release_farm_spend, reserve_farm_spend
from ..handle import TaskHandle, short_id
from ..journals import current_journal, journal_status
from .prepared import PaidSubmit
from .unrecorded import UNRECORDED, key_of

if TYPE_CHECKING:
    from ...net.client import WaveSpeedClient

log = logging.getLogger("wavespeed")

ENV_SHOW_BALANCE = "WAVESPEED_SHOW_BALANCE"
SESSION_SPEND = SessionSpend()
NOT_CHARGED = "$0, nothing was accepted"
MAYBE_CHARGED = "may have been charged: check your WaveSpeed history"


def was_not_accepted(exc: BaseException) -> bool:
    """True when a failed submit provably created no task (so its price is given back): the same
    rule as the client's re-send. An error that names a task id came after the task existed: it is
    paid, whatever its type. A server error with a status (a 5xx, however it came) may have come
    after the task was created; one without a status was raised before anything was sent."""
    request_id = getattr(exc, "request_id", None)
    if isinstance(request_id, str) and request_id:
        return False
    if isinstance(exc, E.SubmitUncertainError):
        return False
    if isinstance(exc, E.ServerError):
        return exc.status is None  # nothing was sent (refused, DNS, connect, TLS)
    return isinstance(exc, E.WaveSpeedError)  # WaveSpeed's own refusal (its 429, a 4xx), or ours


def uncertain_hint(paid: PaidSubmit, kept: bool) -> str:
    """What queuing again does after a submit that may have been paid: with the intent kept in the
    journal the same inputs look in the history first; with seed -1 or force_rerun they pay again."""
    if kept:
        return (
            "it was not resent to avoid a double charge: queue the same inputs again and the pack "
            "looks for it in your WaveSpeed history first (force_rerun pays again)"
        )
    why = (
        "force_rerun is on" if paid.force_rerun else "seed is -1" if paid.request.seed == -1 else "no journal"
    )
    return (
        "it was not resent to avoid a double charge: check your WaveSpeed history before queuing "
        f"again ({why}: queuing again makes a new paid task)"
    )


class _Payment:
    """One POST's bookkeeping in the worker thread: the journal record and the intent's release."""

    def __init__(self, paid: PaidSubmit, intent: Intent | None) -> None:
        self.paid = paid
        self.intent = intent
        self.journal = paid.journal
        self.owed = False  # a record that failed is owed: retried until it lands (unrecorded.py)
        self.farm_booking: str | None = None  # the price booked against the farm's budget

    def record(self, request_id: str, prediction: Prediction | None, error: str) -> bool:
        """Journal the accepted task; False (a log line, and the write owed until it lands) when the
        journal could not take it now."""
        paid, journal = self.paid, self.journal
        if journal is None:
            return False
        now = time.time()

        def write() -> None:
            journal.record_submitted(
                request_id,
                model=paid.request.model,
                params=paid.params,
                price_usd=paid.request.price_usd,
                account=paid.account,
                status=STATUS_IN_FLIGHT if prediction is None else journal_status(prediction),
                server_status="" if prediction is None else prediction.status,
                outputs=prediction.outputs if prediction is not None and prediction.is_completed else (),
                error=error,
                submitted_at=now,
                identity_hash=paid.identity,
                release_intent=self.intent is not None,
            )
            if paid.force_rerun:
                earlier = journal.get_intent(paid.account, paid.identity)
                if earlier is not None and not owner_alive(earlier, journal.clock()):
                    journal.drop_intent(paid.account, paid.identity)  # paid again knowingly

        try:
            write()
        except TaskTakenError as exc:  # a server naming an id already journaled for other inputs
            log.warning("WaveSpeed journal: could not record task %s (%s)", request_id, exc)
            return False
        except Exception as exc:
            log.warning("WaveSpeed journal: task %s not journaled yet (%s); retrying", request_id, exc)
            done = prediction if prediction is not None and prediction.is_terminal else None
            owed = paid.reused(request_id, done, now)
            UNRECORDED.keep(key_of(journal, paid.account, paid.identity), write, task=owed)
            self.owed = True
            return False
        return True

    def let_go(self, *, drop: bool) -> bool:
        """Release our intent: deleted when nothing was paid, else left 'uncertain' for the next
        submit (owed until it lands if the journal cannot take it now); whether the intent is, or
        will be, 'uncertain' in the journal."""
        journal, intent = self.journal, self.intent
        if journal is None or intent is None:
            return False

        def write() -> None:
            if drop:
                journal.drop_intent(intent.account, intent.identity, owner=intent.owner)
            else:
                journal.set_intent_state(intent.account, intent.identity, intent.owner, STATE_UNCERTAIN)

        try:
            write()
        except Exception as exc:
            log.warning("WaveSpeed journal: could not release the submit intent yet (%s); retrying", exc)
            UNRECORDED.keep(key_of(journal, intent.account, intent.identity), write)
        return not drop

    def end_lease(self) -> None:
        if self.intent is not None and self.journal is not None:
            LEASES.release(self.journal, self.intent.account, self.intent.identity)


def post(paid: PaidSubmit, intent: Intent | None) -> TaskHandle:
    """Book the price, POST once, journal the accepted task (releasing ``intent`` with it)."""
    payment = _Payment(paid, intent)
    price = paid.request.price_usd
    budget = session_budget_usd()
    try:
        try:
            paid.cancel.stop_if_set()
            spent = SESSION_SPEND.reserve(price, budget)  # BudgetExceededError before any request
            try:
                payment.farm_booking = reserve_farm_spend(paid.journal, paid.account, price)
            except BaseException:
                SESSION_SPEND.release(price)
                raise
        except BaseException:
            payment.let_go(drop=True)
            raise
        mode = "sync" if paid.request.enable_sync_mode else "async"
        paid.context.status.set(0.02, f"submitting ({mode}) · ${price:.2f}")
        prediction = _post_once(paid, payment)
        # Journal first, before anything else can fail or anyone waits: the task is paid for.
        kept = payment.record(prediction.id, prediction, prediction.error if prediction.is_failed else "")
    finally:
        payment.end_lease()
    extra = f" · session ${spent:.2f} of ${budget:.2f}" if budget is not None else ""
    if _show_balance():
        extra += _balance_text(paid.client)
    if not kept:
        extra += " · not journaled yet (retrying)" if payment.owed else " · not journaled"
    state = "done" if prediction.is_terminal else "submitted"
    paid.context.status.set(1.0, f"{state} · ${price:.2f} · task {short_id(prediction.id)}{extra}")
    return TaskHandle(
        request_id=prediction.id,
        model=paid.request.model,
        params=paid.params,
        price_usd=price,
        prediction=prediction if prediction.is_terminal else None,
    )


def _post_once(paid: PaidSubmit, payment: _Payment) -> Prediction:
    """The POST, through the account's scheduler. A failure says what it cost: a task accepted and
    then lost is journaled and named; a submit that created no task gives its price back; one that
    may have created a task keeps the price and leaves the intent 'uncertain'."""
    price = paid.request.price_usd

    def waiting(text: str) -> None:  # a 429 or a full window: waiting text, never an error
        paid.context.status.set(0.02, f"{text} · ${price:.2f}")
        if paid.context.rate_wait is not None:
            paid.context.rate_wait(text)

    try:
        gate = farm_gate(paid.journal, paid.account, was_not_accepted)
        return accounts.submit(paid.client, paid.request, cancel=paid.cancel, status=waiting, gate=gate)
    except BaseException as exc:
        rid = getattr(exc, "request_id", None)
        if isinstance(exc, E.WaveSpeedError) and isinstance(rid, str) and rid:
            # Accepted and paid, but something after it went wrong: keep and show the task.
            raise exc.replaced(request_id=rid, journaled=payment.record(rid, None, exc.message)) from exc
        if was_not_accepted(exc):
            SESSION_SPEND.release(price)
            release_farm_spend(paid.journal, payment.farm_booking)
            payment.let_go(drop=True)
            paid.context.status.set(0.0, f"not submitted · {NOT_CHARGED}")
            if isinstance(exc, E.WaveSpeedError):  # the error says it, as the status line does
                raise exc.replaced(charged=NOT_CHARGED) from exc
            raise
        kept = payment.let_go(drop=False)  # may have been paid: never silently again
        paid.context.status.set(0.0, f"submit failed · {MAYBE_CHARGED}")
        if isinstance(exc, E.SubmitUncertainError):
            raise exc.replaced(hint=uncertain_hint(paid, kept)) from None
        raise


def afford(requests: Sequence[KontextRequest]) -> float:
    """The whole price of several submits, refused (nothing submitted) if the session budget
    cannot cover all of it. Returns the total."""
    total = sum(r.price_usd for r in requests)
    budget = session_budget_usd()
    if budget is not None and SESSION_SPEND.spent_usd + total > budget + 1e-9:
        raise E.BudgetExceededError(
            f"This batch costs ${total:.2f} ({len(requests)} images); the session budget has "
            f"${max(0.0, budget - SESSION_SPEND.spent_usd):.2f} left of ${budget:.2f}: nothing was "
            "submitted. Raise WAVESPEED_SESSION_BUDGET_USD or make the batch smaller."
        )
    if os.environ.get(ENV_FARM_BUDGET, "").strip():  # the farm's budget, held in its database
        farm_covers(current_journal(), total, len(requests))
    return total


def _show_balance() -> bool:
    return os.environ.get(ENV_SHOW_BALANCE, "").strip().lower() in ("1", "true", "yes", "on")


def _balance_text(client: WaveSpeedClient) -> str:
    """`` · balance $N``, or nothing: the balance check never fails a submit."""
    try:
        return f" · balance ${client.balance():.2f}"
    except Exception as exc:
        log.info("WaveSpeed balance check failed: %s", exc)
        return ""
