"""The paid path: ONE call per submit, ``submit_task``, which every paid node (Generate, Edit,
Multi-Reference, Batch) makes, synchronously, in one worker thread from its start to its end.

``PaidSubmit.prepare`` (prepared.py) validates the request (unless the node already did) and gathers
what one submit needs (the body, the input identity, account, client, journal, the latched Cancel)
once; ``submit_task`` then decides, in this order and in this one place:

1. Cancel: after a Cancel, no POST starts, ever (the context's check, latched; a Batch shares one
   latch between its tasks; the account's scheduler asks it again right before the POST).
2. Fixed seed and not ``force_rerun``: single-flight (shared_task.py). Identical submits in this
   process share one task; across processes the journal's intent row is claimed before the POST; a
   journaled task that is still there is handed back (no charge); an identical submit that was
   interrupted and may have been paid is looked for in the history, matched exactly on what it sent.
3. The journal fails closed: when it cannot say whether a fixed-seed task was already paid (locked
   past its wait, read-only, full, corrupt), nothing is submitted; its one line says what is wrong
   with which file and that ``force_rerun`` pays without it.
4. The price, the POST and the journal record (payment.py).

Batch is a loop over this call (it checks the whole price first with ``afford``, payment.py).
"""

from __future__ import annotations

from ...api.kontext_request import KontextRequest
from ...journal.sqlite_file import journal_failure
from ..accounts import forget_clients
from ..context import TaskContext
from ..handle import TaskHandle
from ..journals import forget_journals
from .payment import SESSION_SPEND, post
from .prepared import PaidSubmit
from .shared_task import FLIGHTS, share_or_pay
from .unrecorded import UNRECORDED


def submit_task(request: KontextRequest, context: TaskContext, *, force_rerun: bool = False) -> TaskHandle:
    """Validate, then reuse, share or pay for one task, as the module docstring says. Blocks."""
    paid = PaidSubmit.prepare(request, context, force_rerun=force_rerun)
    paid.cancel.stop_if_set()
    if not paid.single_flight:
        return post(paid, None)  # a new image every time: pay for a new task
    if paid.journal is None:  # prepare() raises for a fixed seed; kept for type checkers
        raise journal_failure(None, RuntimeError("no journal"))
    return share_or_pay(paid, paid.journal)


def reset_session_state() -> None:
    """Forget everything held in memory (journals, clients, flights, session spend, journal writes
    still owed), as a restart would."""
    forget_journals()
    forget_clients()
    FLIGHTS.clear()
    SESSION_SPEND.reset()
    UNRECORDED.clear()
