"""The paid path: ONE object per submit, and the steps every paid node (Generate, Edit, Multi-Reference,
Batch) goes through with it.

``PaidSubmit.prepare`` validates the request and gathers what one submit needs (request, input
identity, account, client, journal, progress, the Cancel rule) once; ``submit(paid)`` then decides,
in this order and in this one place:

1. Cancel: after a Cancel, no POST starts, ever (``CancelRule``: latched, shared by a whole batch,
   asked again by the account's scheduler right before the POST).
2. Fixed seed and not ``force_rerun``: single-flight. Identical submits in this process share one
   task (``FLIGHTS``); across processes the journal's intent row is claimed before the POST (see
   wavespeed/journal/singleflight.py). A journaled task that is still there (WaveSpeed is asked,
   whatever its age) is handed back (no charge), and so is one paid here whose row the journal has
   not taken yet (unrecorded.py); an identical submit that was interrupted and may have been paid
   is looked for in the history (reuse.py), matched exactly on what it sent.
3. The journal fails closed: when it cannot say whether a fixed-seed task was already paid (locked
   past its wait, read-only, full, corrupt), nothing is submitted; its one line says what is wrong
   with which file and that ``force_rerun`` pays without it.
4. The price, the POST and the journal record (paid_post.py).

Batch is a loop over this path (it shares one CancelRule between its tasks and checks the whole
price first with ``afford``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from ...wavespeed import (
    STATUS_COMPLETED,
    STATUS_IN_FLIGHT,
    CancelCheck,
    Flights,
    Intent,
    Journal,
    JournalError,
    KontextRequest,
    Prediction,
    TaskRecord,
    acquire,
    errors as E,
    journal_failure,
    new_intent,
    params_hash,
)
from ..shared import comfy_bridge as bridge
from ..shared.progress import short_id
from ..shared.runtime import Watch, get_client, run_blocking
from ..shared.task_value import TaskHandle
from .journal_glue import current_journal
from .unrecorded import UNRECORDED, key_of

if TYPE_CHECKING:
    from ...wavespeed import WaveSpeedClient

T = TypeVar("T")

# An identical submit waits this long for another process's POST (a sync-mode inference included).
INTENT_WAIT_S = 240.0

FLIGHTS: Flights[TaskHandle] = Flights()


class CancelRule:
    """Cancel, decided once for a submit or a whole batch: once seen, it stays seen.

    ComfyUI clears its interrupt flag as soon as the first node raises; a batch task that starts
    after that would see no Cancel and pay. This rule remembers the epoch it was made in (a Cancel
    bumps it, nodes/shared/comfy_bridge.py) and latches, so every later check says "cancelled"."""

    def __init__(self) -> None:
        self._epoch = bridge.current_epoch()
        self._latched = threading.Event()

    def __call__(self) -> bool:
        if self._latched.is_set():
            return True
        if bridge.interrupted(self._epoch):
            self._latched.set()
            return True
        return False

    def latch(self) -> None:
        """Stop every submit that has not started its POST yet (Cancel, or the batch gave up)."""
        self._latched.set()


@dataclass(frozen=True)
class PaidSubmit:
    """Everything one paid submit needs, built once (``prepare``) and passed whole."""

    request: KontextRequest
    params: dict[str, Any]
    identity: str  # the inputs' identity (uploaded images by content): what single-flight matches
    account: str  # client.account_tag: key-free
    client: WaveSpeedClient
    journal: Journal | None  # None: unusable, and the submit does not need it (seed -1, force_rerun)
    progress: bridge.NodeProgress
    cancel: CancelRule = field(default_factory=CancelRule)
    force_rerun: bool = False
    on_rate_wait: Callable[[str], None] | None = None

    @classmethod
    def prepare(
        cls,
        request: KontextRequest,
        node_id: str | None,
        *,
        force_rerun: bool = False,
        cancel: CancelRule | None = None,
        on_rate_wait: Callable[[str], None] | None = None,
    ) -> PaidSubmit:
        """Validate (a typed one-line error before any key lookup or request), then gather the rest."""
        request.validate()
        params = request.payload()
        client = get_client()  # raises ConfigError (missing key) before anything is sent
        fixed = not force_rerun and request.seed != -1
        try:
            journal: Journal | None = current_journal()
        except Exception as exc:  # the journal's folder cannot even be resolved
            if fixed:
                raise journal_failure(None, exc) from None
            journal = None
        return cls(
            request=request,
            params=params,
            identity=params_hash(request.model, _content_addressed(request)),
            account=client.account_tag,
            client=client,
            journal=journal,
            progress=bridge.NodeProgress(node_id),
            cancel=cancel if cancel is not None else CancelRule(),
            force_rerun=force_rerun,
            on_rate_wait=on_rate_wait,
        )

    @property
    def single_flight(self) -> bool:
        """Identical inputs must share one task: a fixed seed, and not force_rerun."""
        return not self.force_rerun and self.request.seed != -1

    def stop_if_cancelled(self) -> None:
        """Raise the Cancel (as ComfyUI expects it) if it was pressed: nothing was sent."""
        if self.cancel():
            bridge.raise_interrupted(None)

    async def run(self, fn: Callable[[CancelCheck], T], watch: Watch) -> T:
        """run_blocking with this submit's Cancel rule added to the thread's own check."""
        rule = self.cancel
        return await run_blocking(lambda cancel: fn(lambda: cancel() or rule()), watch=watch)

    def reused(self, request_id: str, prediction: Prediction | None, submitted_at: float) -> TaskHandle:
        """The handle of a task already paid for (no charge)."""
        return TaskHandle(
            request_id=request_id,
            model=self.request.model,
            params=self.params,
            price_usd=0.0,
            submitted_at=submitted_at,
            prediction=prediction if prediction is not None and prediction.is_terminal else None,
        )


async def submit(paid: PaidSubmit) -> TaskHandle:
    """Reuse, share or pay for one task, as the module docstring says."""
    from .paid_post import post

    paid.stop_if_cancelled()
    if not paid.single_flight:
        return await post(paid, None)  # a new image every time: pay for a new task
    if paid.journal is None:  # prepare() raises for a fixed seed; kept for type checkers
        raise journal_failure(None, RuntimeError("no journal"))
    key = (str(paid.journal.directory), paid.account, paid.identity)
    while True:
        flight, leader = FLIGHTS.join(key)
        if leader:
            break
        shared, error = await run_blocking(flight.outcome, watch=Watch(paid.progress))
        if error is not None and (
            isinstance(error, E.CancelledError)
            or bridge.is_interrupt(error)
            or not isinstance(error, Exception)
        ):
            paid.stop_if_cancelled()
            continue  # the leader was cancelled, not us: lead a new attempt
        if error is not None:
            raise error
        assert shared is not None
        paid.progress.update(
            1.0, f"shared task {short_id(shared.request_id)} with an identical node (no charge)"
        )
        return replace(shared, price_usd=0.0)
    try:
        handle = await _single_flight(paid, paid.journal)
    except BaseException as exc:
        flight.finish(error=exc)
        raise
    else:
        flight.finish(result=handle)
    finally:
        FLIGHTS.land(key, flight)
    return handle


async def _single_flight(paid: PaidSubmit, journal: Journal) -> TaskHandle:
    """Reuse a journaled task, wait for an identical submit elsewhere, recover an interrupted one,
    or claim the intent and POST. A journal that cannot answer stops here (fails closed)."""
    from .paid_post import post
    from .reuse import check_reusable, recover

    request = paid.request
    payload_hash = params_hash(request.model, paid.params)
    intent = new_intent(paid.account, paid.identity, request.model, payload_hash, paid.params)
    owed_key = key_of(journal, paid.account, paid.identity)
    watch = Watch(paid.progress)
    for _ in range(3):  # a reuse candidate that turns out gone is marked so; then claim again

        def on_wait(other: Intent) -> None:
            watch.set(0.02, f"an identical task is being submitted by another ComfyUI (pid {other.pid})…")

        def claim(cancel: CancelCheck) -> TaskRecord | Intent | TaskHandle | None:
            owed = UNRECORDED.task(owed_key)
            if owed is not None:  # paid here, its row not yet written: reused from memory at once
                with contextlib.suppress(Exception):
                    UNRECORDED.land(owed_key)  # (else the retry thread keeps at it)
                return owed
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
                    cancel=cancel,
                    on_wait=on_wait,
                )
            except (E.WaveSpeedError, KeyboardInterrupt, SystemExit):
                raise  # a JournalError (classified), a Cancel, a wait that timed out
            except Exception as exc:  # anything else from the disk: the journal cannot answer
                raise journal_failure(journal.path, exc) from None

        try:
            got = await paid.run(claim, watch)
        except JournalError:
            raise  # nothing was submitted: the line says which file, what is wrong, how to go on
        if got is None:
            return await post(paid, intent)
        if isinstance(got, TaskHandle):
            paid.progress.update(1.0, f"reused task {got.request_id} (no charge; not journaled yet)")
            return got
        if isinstance(got, Intent):
            return await recover(paid, journal, got)
        # An in-flight record is a task already paid for whose waiter died (crash, restart,
        # timeout): identical inputs wait for that task instead of paying for a second one.
        still_there, prediction = await check_reusable(paid, journal, got.request_id)
        if still_there:
            paid.progress.update(1.0, f"reused task {short_id(got.request_id)} (no charge)")
            return paid.reused(got.request_id, prediction, got.submitted_at)
    raise E.ServerError(
        "WaveSpeed journal: identical earlier tasks kept turning out gone; turn on force_rerun to submit anew."
    )


def afford(requests: Sequence[KontextRequest]) -> float:
    """The whole price of several submits, refused (nothing submitted) if the session budget
    cannot cover all of it. Returns the total."""
    from ...wavespeed import session_budget_usd
    from .paid_post import SESSION_SPEND

    total = sum(r.price_usd for r in requests)
    budget = session_budget_usd()
    if budget is not None and SESSION_SPEND.spent_usd + total > budget + 1e-9:
        raise E.BudgetExceededError(
            f"This batch costs ${total:.2f} ({len(requests)} images); the session budget has "
            f"${max(0.0, budget - SESSION_SPEND.spent_usd):.2f} left of ${budget:.2f}: nothing was "
            "submitted. Raise WAVESPEED_SESSION_BUDGET_USD or make the batch smaller."
        )
    return total


def _content_addressed(request: KontextRequest) -> dict[str, Any]:
    """The payload with uploaded images named by their content: an image uploaded again after a
    restart gets a new URL, but it is the same input, so the same task may be reused."""
    from ...wavespeed import CACHE

    return request.with_references([CACHE.content_id(url) or url for url in request.references]).payload()
