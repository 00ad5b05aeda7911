"""Submitting a Kontext task from any node: validate, reuse or POST once, journal, hand back a TaskHandle.

Shared by the text-to-image and edit nodes so that validation-before-spend, price display, the
task journal, reuse of a paid result and the session budget work the same way everywhere:

1. Validate locally (a typo never costs money).
2. Fixed seed and not ``force_rerun``: single-flight. Identical submits in this process share one
   task (``FLIGHTS``); across processes the journal's intent row is claimed before the POST (see
   wavespeed/singleflight.py). If the journal holds a completed or still in-flight task with the
   same inputs (younger than the API's 7-day retention, same account) and WaveSpeed still has it,
   that task is handed back instead of paying again; an identical submit that was interrupted and
   may have been paid is looked for in the history, or reported in one line, never paid again.
3. Book the price against ``WAVESPEED_SESSION_BUDGET_USD`` (BudgetExceededError before any request).
4. POST once through the account's scheduler (limits.py: a 429 is waited out as status text); the
   accepted task is journaled in the worker thread right after the reply, before anyone waits on it, so even a Cancel or a crash a moment later leaves it recoverable.

The reuse check and the recovery of an interrupted submit are in reuse.py; which journal, and
best-effort updates of it, in journal_glue.py.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..wavespeed import errors as E
from ..wavespeed.budget import SessionSpend, session_budget_usd
from ..wavespeed.journal import (
    RETENTION_S,
    STATUS_COMPLETED,
    STATUS_IN_FLIGHT,
    Intent,
    Journal,
    JournalError,
    TaskRecord,
    account_tag,
    params_hash,
)
from ..wavespeed.models import KontextRequest, Prediction
from ..wavespeed.singleflight import (
    LEASES,
    STATE_UNCERTAIN,
    Flights,
    acquire,
    new_intent,
    owner_alive,
)
from ..wavespeed.vocabulary import CancelCheck
from . import comfy_bridge as bridge
from . import limits
from .journal_glue import (  # re-exported: Poll Result and Recent Tasks import them from here
    current_journal,
    forget_journals,
    journal_note,
    journal_outcome,
    journal_status,
    open_journal,
)
from .reuse import check_reusable, recover
from .runtime import Watch, get_client, run_blocking
from .task import TaskHandle

if TYPE_CHECKING:
    from ..wavespeed.client import WaveSpeedClient

__all__ = [
    "current_journal",
    "journal_note",
    "journal_outcome",
    "open_journal",
    "reset_session_state",
    "submit_task",
]

log = logging.getLogger("wavespeed")

ENV_SHOW_BALANCE = "WAVESPEED_SHOW_BALANCE"
# Reuse only results that will still be on WaveSpeed when Poll Result fetches them.
REUSE_MAX_AGE_S = RETENTION_S - 3600

# An identical submit waits this long for another process's POST (a sync-mode inference included).
INTENT_WAIT_S = 240.0

SESSION_SPEND = SessionSpend()
FLIGHTS: Flights[TaskHandle] = Flights()


def reset_session_state() -> None:
    """Forget everything held in memory (journal caches, session spend), as a restart would."""
    forget_journals()
    FLIGHTS.clear()
    SESSION_SPEND.reset()


def _account_of(client: WaveSpeedClient) -> str:
    # The client keeps the key private; only a one-way tag of it ever leaves this function.
    return account_tag(client.base_url, str(getattr(client, "_api_key", "")))


def _was_not_accepted(exc: BaseException) -> bool:
    """True when a failed submit provably created no task (so its price is given back). An error
    that names a task id came after the task existed: it is paid, whatever its type."""
    request_id = getattr(exc, "request_id", None)
    if isinstance(request_id, str) and request_id:
        return False
    if isinstance(exc, E.SubmitUncertainError):
        return False
    if isinstance(exc, E.ServerError):
        return exc.status in (None, 429, 503)  # not sent, or rejected before a task existed
    return isinstance(exc, E.WaveSpeedError)


def _show_balance() -> bool:
    return os.environ.get(ENV_SHOW_BALANCE, "").strip().lower() in ("1", "true", "yes", "on")


async def submit_task(
    request: KontextRequest,
    node_id: str | None,
    *,
    force_rerun: bool = False,
    on_rate_wait: Callable[[str], None] | None = None,
) -> TaskHandle:
    request.validate()  # a typed one-line InvalidRequestError before any key lookup or request
    params = request.payload()
    progress = bridge.NodeProgress(node_id)
    journal = open_journal()
    client = get_client()  # raises ConfigError (missing key) before anything is sent
    account = _account_of(client)
    identity = params_hash(request.model, _content_addressed(params))
    if journal is None or force_rerun or request.seed == -1:
        # A new image every time (or no journal to coordinate through): pay for a new task.
        return await _post(
            request,
            params,
            progress,
            client,
            journal,
            account,
            identity,
            None,
            force_rerun,
            on_rate_wait=on_rate_wait,
        )

    key = (str(journal.directory), account, identity)
    while True:
        flight, leader = FLIGHTS.join(key)
        if leader:
            break
        shared, error = await run_blocking(flight.outcome, watch=Watch(progress))
        if error is not None and (
            isinstance(error, E.CancelledError)
            or bridge.is_interrupt(error)
            or not isinstance(error, Exception)
        ):
            continue  # the leader was cancelled (if we were too, our own wait raises): lead a new attempt
        if error is not None:
            raise error
        assert shared is not None
        progress.update(1.0, f"shared task {shared.request_id} with an identical node (no charge)")
        return replace(shared, price_usd=0.0)
    try:
        handle = await _single_flight(
            request, params, progress, client, journal, account, identity, on_rate_wait=on_rate_wait
        )
    except BaseException as exc:
        flight.finish(error=exc)
        raise
    else:
        flight.finish(result=handle)
    finally:
        FLIGHTS.land(key, flight)
    return handle


async def _single_flight(
    request: KontextRequest,
    params: dict[str, Any],
    progress: bridge.NodeProgress,
    client: WaveSpeedClient,
    journal: Journal,
    account: str,
    identity: str,
    *,
    on_rate_wait: Callable[[str], None] | None = None,
) -> TaskHandle:
    """Reuse a journaled task, wait for an identical submit elsewhere, recover an interrupted one,
    or claim the intent and POST."""
    intent = new_intent(account, identity, request.model, params_hash(request.model, params))
    watch = Watch(progress)
    for _ in range(3):  # a reuse candidate that turns out gone is marked so; then claim again

        def on_wait(other: Intent) -> None:
            watch.set(0.02, f"an identical task is being submitted by another ComfyUI (pid {other.pid})…")

        def claim(cancel: CancelCheck) -> TaskRecord | Intent | None:
            return acquire(
                journal,
                intent,
                max_age_s=REUSE_MAX_AGE_S,
                reuse_statuses=(STATUS_COMPLETED, STATUS_IN_FLIGHT),
                deadline=time.monotonic() + INTENT_WAIT_S,
                cancel=cancel,
                on_wait=on_wait,
            )

        try:
            got = await run_blocking(claim, watch=watch)
        except Exception as exc:  # the journal itself failed (disk, lock): submit as without a journal
            if isinstance(exc, E.WaveSpeedError) and not isinstance(exc, JournalError):
                raise
            if isinstance(exc, JournalError):
                log.warning("%s Submitting without the journal.", exc.message)
            else:
                log.warning("WaveSpeed journal: single-flight check failed; submitting", exc_info=True)
            return await _post(
                request,
                params,
                progress,
                client,
                None,
                account,
                identity,
                None,
                False,
                on_rate_wait=on_rate_wait,
            )
        if got is None:
            return await _post(
                request,
                params,
                progress,
                client,
                journal,
                account,
                identity,
                intent,
                False,
                on_rate_wait=on_rate_wait,
            )
        if isinstance(got, Intent):
            return await recover(request, params, progress, client, journal, account, identity, got)
        # An in-flight record is a task already paid for whose waiter died (crash, restart,
        # timeout): identical inputs wait for that task instead of paying for a second one.
        still_there, prediction = await check_reusable(client, journal, got.request_id, progress)
        if still_there:
            progress.update(1.0, f"reused task {got.request_id} (no charge)")
            log.info("reusing %s task %s for identical inputs (no charge)", got.status, got.request_id)
            return TaskHandle(
                request_id=got.request_id,
                model=request.model,
                params=params,
                price_usd=0.0,
                submitted_at=got.submitted_at,
                prediction=prediction,
            )
    raise E.ServerError(
        "WaveSpeed journal: identical earlier tasks kept turning out gone; turn on force_rerun to submit anew."
    )


async def _post(
    request: KontextRequest,
    params: dict[str, Any],
    progress: bridge.NodeProgress,
    client: WaveSpeedClient,
    journal: Journal | None,
    account: str,
    identity: str,
    intent: Intent | None,
    force_rerun: bool,
    *,
    on_rate_wait: Callable[[str], None] | None = None,
) -> TaskHandle:
    """Book the price, POST once, journal the accepted task (releasing ``intent`` in the same
    transaction). A submit that may have been paid without an id leaves the intent 'uncertain'."""
    price = request.price_usd
    budget = session_budget_usd()
    try:
        spent = SESSION_SPEND.reserve(price, budget)  # BudgetExceededError before any request
    except BaseException:
        _let_go(journal, intent, drop=True)
        if intent is not None and journal is not None:
            LEASES.release(journal)
        raise
    watch = Watch(progress)
    mode = "sync" if request.enable_sync_mode else "async"
    watch.set(0.02, f"submitting ({mode}) · ${price:.2f}")
    watch.publish()
    show_balance = _show_balance()

    def waiting(text: str) -> None:  # a 429 or a full window: waiting text, never an error
        watch.set(0.02, f"{text} · ${price:.2f}")
        if on_rate_wait is not None:
            on_rate_wait(text)

    def record(request_id: str, prediction: Prediction | None, error: str) -> str:
        if journal is None:
            return ""
        try:
            journal.record_submitted(
                request_id,
                model=request.model,
                params=params,
                price_usd=price,
                account=account,
                status=STATUS_IN_FLIGHT if prediction is None else journal_status(prediction),
                server_status="" if prediction is None else prediction.status,
                outputs=prediction.outputs if prediction is not None and prediction.is_completed else (),
                error=error,
                identity_hash=identity,
                release_intent=intent is not None,
            )
            if force_rerun:
                earlier = journal.get_intent(account, identity)
                if earlier is not None and not owner_alive(earlier):
                    journal.drop_intent(account, identity)  # paid again knowingly: clear the warning
        except Exception:
            log.warning("WaveSpeed journal: could not record task %s", request_id, exc_info=True)
            return " · not journaled"
        return ""

    def work(cancel: CancelCheck) -> tuple[TaskHandle, str]:
        try:
            try:
                prediction = limits.submit(client, request, cancel=cancel, status=waiting)
            except BaseException as exc:
                rid = getattr(exc, "request_id", None)
                if isinstance(exc, E.WaveSpeedError) and isinstance(rid, str) and rid:
                    # Accepted and paid, but something after it went wrong: keep and show the task.
                    note = record(rid, None, exc.message)
                    _name_the_task(exc, rid, note)
                elif _was_not_accepted(exc):
                    SESSION_SPEND.release(price)
                    _let_go(journal, intent, drop=True)
                else:
                    _let_go(journal, intent, drop=False)  # may have been paid: never silently again
                raise
            # Journal first, before anything else can fail or anyone waits: the task is paid for.
            note = record(prediction.id, prediction, prediction.error if prediction.is_failed else "")
        finally:
            if intent is not None and journal is not None:
                LEASES.release(journal)
        extra = ""
        if budget is not None:
            extra += f" · session ${spent:.2f} of ${budget:.2f}"
        if show_balance:
            extra += _balance_text(client)
        final = prediction if prediction.is_terminal else None
        handle = TaskHandle(
            request_id=prediction.id,
            model=request.model,
            params=params,
            price_usd=price,
            prediction=final,
        )
        return handle, extra + note

    handle, extra = await run_blocking(work, watch=watch)
    state = "done" if handle.prediction is not None else "submitted"
    progress.update(1.0, f"{state} · ${price:.2f} · task {handle.request_id}{extra}")
    return handle


def _name_the_task(exc: E.WaveSpeedError, request_id: str, note: str) -> None:
    """Make sure the error shows the paid task's id, and where to get its result."""
    if request_id in exc.message:
        return
    kept = "not journaled" if note else "journaled"
    exc.message = (
        f"{exc.message.rstrip('.')} (task {request_id} was accepted and {kept}: "
        "paste its id into WaveSpeed Poll Result to fetch the result)."
    )
    exc.args = (exc.message,)


def _let_go(journal: Journal | None, intent: Intent | None, *, drop: bool) -> None:
    """Release our intent: deleted when nothing was paid, else left 'uncertain' for the next submit."""
    if journal is None or intent is None:
        return
    try:
        if drop:
            journal.drop_intent(intent.account, intent.identity, owner=intent.owner)
        else:
            journal.set_intent_state(intent.account, intent.identity, intent.owner, STATE_UNCERTAIN)
    except Exception:
        log.warning("WaveSpeed journal: could not release the submit intent", exc_info=True)


def _content_addressed(params: dict[str, Any]) -> dict[str, Any]:
    """Params with uploaded images named by their content: an image uploaded again after a restart
    gets a new URL, but it is the same input, so the same task may be reused."""
    from ..wavespeed.uploads import CACHE

    def ident(url: Any) -> Any:
        return (CACHE.content_id(url) or url) if isinstance(url, str) else url

    out = dict(params)
    if "image" in out:
        out["image"] = ident(out["image"])
    if isinstance(out.get("images"), list):
        out["images"] = [ident(u) for u in out["images"]]
    return out


def _balance_text(client: WaveSpeedClient) -> str:
    """`` · balance $N``, or nothing: the balance check never fails a submit."""
    try:
        return f" · balance ${client.balance():.2f}"
    except Exception as exc:
        log.info("WaveSpeed balance check failed: %s", exc)
        return ""
