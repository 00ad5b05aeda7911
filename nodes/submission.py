"""Submitting a Kontext task from any node: validate, reuse or POST once, journal, hand back a TaskHandle.

Shared by the text-to-image and edit nodes so that validation-before-spend, price display, the
task journal, reuse of a paid result and the session budget work the same way everywhere:

1. Validate locally (a typo never costs money).
2. Fixed seed and not ``force_rerun``: if the journal holds a completed or still in-flight task
   with the same params (younger than the API's 7-day retention, same account) and WaveSpeed still has it, hand
   back that task instead of paying again; WaveSpeed Poll Result fetches it by id.
3. Book the price against ``WAVESPEED_SESSION_BUDGET_USD`` (BudgetExceededError before any request).
4. POST once through the account's scheduler (limits.py: a 429 is waited out as status text); the accepted task is journaled in the worker thread right after the reply, before
   anyone waits on it, so even a Cancel or a crash a moment later leaves it recoverable.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..wavespeed import errors as E
from ..wavespeed.journal import (
    RETENTION_S,
    STATUS_COMPLETED,
    STATUS_EXPIRED,
    STATUS_FAILED,
    STATUS_IN_FLIGHT,
    Journal,
    SessionSpend,
    account_tag,
    default_journal_dir,
    params_hash,
    session_budget_usd,
)
from ..wavespeed.models import KontextRequest, Prediction
from . import comfy_bridge as bridge
from . import limits
from .runtime import CancelCheck, Watch, get_client, run_blocking
from .task import TaskHandle

if TYPE_CHECKING:
    from ..wavespeed.client import WaveSpeedClient

log = logging.getLogger("wavespeed")

ENV_SHOW_BALANCE = "WAVESPEED_SHOW_BALANCE"
# Reuse only results that will still be on WaveSpeed when Poll Result fetches them.
REUSE_MAX_AGE_S = RETENTION_S - 3600

SESSION_SPEND = SessionSpend()
_journals: dict[str, Journal] = {}
_journals_lock = threading.Lock()


def current_journal() -> Journal:
    """The journal for the current settings (resolved on each call: env, ComfyUI user dir, ~/.cache)."""
    directory = default_journal_dir(bridge.user_directory())
    key = str(directory)
    with _journals_lock:
        journal = _journals.get(key)
        if journal is None:
            journal = _journals[key] = Journal(directory)
        return journal


def reset_session_state() -> None:
    """Forget everything held in memory (journal caches, session spend), as a restart would."""
    with _journals_lock:
        _journals.clear()
    SESSION_SPEND.reset()


def _account_of(client: WaveSpeedClient) -> str:
    # The client keeps the key private; only a one-way tag of it ever leaves this function.
    return account_tag(client.base_url, str(getattr(client, "_api_key", "")))


def _was_not_accepted(exc: BaseException) -> bool:
    """True when a failed submit provably created no task (so its price is given back)."""
    if isinstance(exc, E.SubmitUncertainError):
        return False
    if isinstance(exc, E.ServerError):
        return exc.status in (None, 429, 503)  # not sent, or rejected before a task existed
    return isinstance(exc, E.WaveSpeedError)


def _show_balance() -> bool:
    return os.environ.get(ENV_SHOW_BALANCE, "").strip().lower() in ("1", "true", "yes", "on")


def journal_outcome(journal: Journal | None, prediction: Prediction) -> None:
    """Best effort: write a terminal (or progressed) server state into the task's record."""
    if journal is None:
        return
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
    try:
        journal.update(request_id, **fields)
    except Exception:
        log.warning("WaveSpeed journal: could not update task %s", request_id, exc_info=True)


def open_journal() -> Journal | None:
    try:
        return current_journal()
    except Exception:
        log.warning("WaveSpeed journal unavailable; results are not journaled", exc_info=True)
        return None


async def submit_task(
    request: KontextRequest,
    node_id: str | None,
    *,
    force_rerun: bool = False,
    on_wait: Callable[[str], None] | None = None,
) -> TaskHandle:
    request.validate()  # a typed one-line InvalidRequestError before any key lookup or request
    params = request.payload()
    progress = bridge.NodeProgress(node_id)
    journal = open_journal()
    client = get_client()  # raises ConfigError (missing key) before anything is sent
    account = _account_of(client)
    identity = params_hash(request.model, _content_addressed(params))

    if journal is not None and not force_rerun and request.seed != -1:
        try:
            # An in-flight record is a task already paid for whose waiter died (crash, restart,
            # timeout): identical inputs wait for that task instead of paying for a second one.
            earlier = journal.find_completed(
                identity,
                REUSE_MAX_AGE_S,
                account=account,
                statuses=(STATUS_COMPLETED, STATUS_IN_FLIGHT),
            )
        except Exception:
            log.warning("WaveSpeed journal lookup failed; submitting a new task", exc_info=True)
            earlier = None
        if earlier is not None:
            still_there, prediction = await _check_reusable(client, journal, earlier.request_id, progress)
            if still_there:
                progress.update(1.0, f"reused task {earlier.request_id} (no charge)")
                log.info(
                    "reusing %s task %s for identical inputs (no charge)", earlier.status, earlier.request_id
                )
                return TaskHandle(
                    request_id=earlier.request_id,
                    model=request.model,
                    params=params,
                    price_usd=0.0,
                    submitted_at=earlier.submitted_at,
                    prediction=prediction,
                )

    price = request.price_usd
    budget = session_budget_usd()
    spent = SESSION_SPEND.reserve(price, budget)  # BudgetExceededError before any request
    watch = Watch(progress)
    mode = "sync" if request.enable_sync_mode else "async"
    watch.set(0.02, f"submitting ({mode}) · ${price:.2f}")
    watch.publish()
    show_balance = _show_balance()

    def waiting(text: str) -> None:  # a 429 or a full window: waiting text, never an error
        watch.set(0.02, f"{text} · ${price:.2f}")
        if on_wait is not None:
            on_wait(text)

    def work(cancel: CancelCheck) -> tuple[TaskHandle, str]:
        try:
            prediction = limits.submit(client, request, cancel=cancel, status=waiting)
        except BaseException as exc:
            if _was_not_accepted(exc):
                SESSION_SPEND.release(price)
            raise
        # Journal first, before anything else can fail or anyone waits: the task is paid for.
        note = ""
        if journal is not None:
            try:
                journal.record_submitted(
                    prediction.id,
                    model=request.model,
                    params=params,
                    price_usd=price,
                    account=account,
                    status=_journal_status(prediction),
                    server_status=prediction.status,
                    outputs=prediction.outputs if prediction.is_completed else (),
                    error=prediction.error if prediction.is_failed else "",
                    identity_hash=identity,
                )
            except Exception:
                log.warning("WaveSpeed journal: could not record task %s", prediction.id, exc_info=True)
                note = " · not journaled"
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


async def _check_reusable(
    client: WaveSpeedClient, journal: Journal, request_id: str, progress: bridge.NodeProgress
) -> tuple[bool, Prediction | None]:
    """Ask WaveSpeed whether a journaled result is still there before reusing it (one GET, which
    Poll Result then skips). Only a definite answer (unknown task, or failed) means a new task;
    if the check itself fails, the result is reused anyway and Poll Result retries the fetch."""
    watch = Watch(progress)
    watch.request_id = request_id
    watch.set(0.02, f"checking earlier task {request_id[:8]}…")
    watch.publish()

    def work(cancel: CancelCheck) -> tuple[bool, Prediction | None]:
        try:
            prediction = client.get_result(request_id, deadline=time.monotonic() + 30.0, cancel=cancel)
        except E.NotFoundError as exc:
            journal_note(journal, request_id, status=STATUS_EXPIRED, error=exc.message)
            return False, None
        except E.CancelledError:
            raise
        except E.WaveSpeedError as exc:
            log.info("could not check task %s before reusing it (%s); reusing it", request_id, exc)
            return True, None
        if prediction.is_failed:
            journal_outcome(journal, prediction)
            return False, None
        return True, prediction if prediction.is_completed else None

    return await run_blocking(work, watch=watch)


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


def _journal_status(prediction: Prediction) -> str:
    if prediction.is_completed:
        return STATUS_COMPLETED
    if prediction.is_failed:
        return STATUS_FAILED
    return STATUS_IN_FLIGHT


def _balance_text(client: WaveSpeedClient) -> str:
    """`` · balance $N``, or nothing: the balance check never fails a submit."""
    try:
        return f" · balance ${client.balance():.2f}"
    except Exception as exc:
        log.info("WaveSpeed balance check failed: %s", exc)
        return ""
