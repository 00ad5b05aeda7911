"""A farm's submits within the limits and the budget its workers share (WAVESPEED_JOURNAL_URL).

The account's scheduler (limits/scheduler.py) keeps one process within the account's limits; in a
farm, each POST also passes the gate here, which asks the farm's database
(journal/farm/account_limits.py) for a place in the account's window and a task slot, waits for
them (status text, Cancel, the submit's deadline) and gives them back when WaveSpeed provably took
nothing. A task's slot frees when any worker sees the task finished (``task_finished``).

The limits are a courtesy to the account (WaveSpeed enforces its own): a database that cannot
answer them lets the submit go on with this process's own limits (one log line). The farm budget
(``WAVESPEED_FARM_BUDGET_USD``) is a promise about money: a database that cannot answer it stops
the submit, nothing paid.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable

from ..api.reply_types import Prediction
from ..core import errors as E
from ..core.vocabulary import CancelCheck
from ..journal.farm.account_limits import (
    ENV_FARM_BUDGET,
    RETRY_S,
    AccountLimits,
    FarmLimits,
    farm_budget_usd,
)
from ..journal.farm.pg_journal import ENV_JOURNAL_URL, PostgresJournal
from ..journal.sqlite_file import LOCKED, JournalError
from ..journal.task_journal import Journal
from ..limits.scheduler import at_once_from_env, limit_from_env, window_from_env

log = logging.getLogger("wavespeed")

_SLICE_S = 0.1  # how often a waiter looks at Cancel


class FarmGate:
    """One account's POSTs through the farm's shared window and task slots."""

    def __init__(
        self,
        limits: FarmLimits,
        account: str,
        config: AccountLimits,
        not_accepted: Callable[[BaseException], bool],
    ) -> None:
        self.limits = limits
        self.account = account
        self.config = config
        self.not_accepted = not_accepted

    def post(
        self,
        fn: Callable[[], Prediction],
        *,
        cancel: CancelCheck,
        status: Callable[[str], None],
        deadline: float,
    ) -> Prediction:
        """``fn`` (one POST) once the farm has room for it; its slot is kept for the task it made."""
        slot = os.urandom(12).hex()
        if not self._admitted(slot, cancel, status, deadline):
            return fn()  # the database cannot answer: this process's own limits only
        try:
            prediction = fn()
        except BaseException as exc:
            rid = getattr(exc, "request_id", None)
            if isinstance(rid, str) and rid:
                self._note(lambda: self.limits.accepted(slot, rid, finished=False))
            elif self.not_accepted(exc):
                self._note(lambda: self.limits.refused(slot))
            raise  # a submit that may have been paid keeps its slot until the lease ends
        self._note(lambda: self.limits.accepted(slot, prediction.id, finished=prediction.is_terminal))
        return prediction

    def _admitted(
        self, slot: str, cancel: CancelCheck, status: Callable[[str], None], deadline: float
    ) -> bool:
        shown = ""
        while True:
            if cancel():
                raise E.CancelledError(
                    "Cancelled while waiting for the farm's account limits; nothing was sent."
                )
            try:
                wait = self.limits.try_admit(self.account, self.config, slot)
            except JournalError as exc:
                if exc.kind != LOCKED:  # busy: ask again; gone: go on alone
                    log.warning("WaveSpeed farm limits unavailable (%s); this worker's own limits apply", exc)
                    return False
                wait = RETRY_S
            if wait is None:
                return True
            if time.monotonic() + min(wait, _SLICE_S) > deadline:
                raise E.RateLimitedError(
                    "The account's limits, shared by the farm, would not let this task in before its "
                    "deadline; nothing was sent or charged: queue fewer tasks at once.",
                    status=429,
                )
            text = f"waiting for the account's limits, shared by the farm (~{math.ceil(wait)} s)"
            if text != shown:
                shown = text
                status(text)
            time.sleep(min(wait, _SLICE_S))

    @staticmethod
    def _note(write: Callable[[], None]) -> None:
        """Best effort after the POST: a lost note frees its slot by its lease, never fails the task."""
        try:
            write()
        except Exception as exc:
            log.warning("WaveSpeed farm limits: could not note a submit (%s)", exc)


def farm_gate(
    journal: Journal | None, account: str, not_accepted: Callable[[BaseException], bool]
) -> FarmGate | None:
    """The gate of a farm journal with account limits to share (a tier or limits set); else None."""
    if not isinstance(journal, PostgresJournal):
        return None
    config = AccountLimits(limit_from_env(), window_from_env(), at_once_from_env())
    if config.per_window is None and config.at_once is None:
        return None
    return FarmGate(FarmLimits(journal), account, config, not_accepted)


def task_finished(journal: Journal | None, request_id: str) -> None:
    """Best effort: a farm task seen finished frees its slot for every worker."""
    if isinstance(journal, PostgresJournal):
        FarmGate._note(lambda: FarmLimits(journal).finished(request_id))


def farm_covers(journal: Journal | None, total_usd: float, images: int) -> None:
    """Refuse a batch whose whole price the farm's budget cannot cover (nothing submitted); a
    no-op without ``WAVESPEED_FARM_BUDGET_USD``. Each task still books its own price when it pays."""
    budget = _farm_budget(journal)
    if budget is None or not isinstance(journal, PostgresJournal):
        return
    left = max(0.0, budget - FarmLimits(journal).spent())
    if total_usd > left + 1e-9:
        raise E.BudgetExceededError(
            f"This batch costs ${total_usd:.2f} ({images} images); the farm budget has ${left:.2f} left "
            f"of ${budget:.2f}: nothing was submitted. Raise {ENV_FARM_BUDGET} or make the batch smaller."
        )


def _farm_budget(journal: Journal | None) -> float | None:
    """``WAVESPEED_FARM_BUDGET_USD`` (None when unset); ConfigError without a farm journal."""
    budget = farm_budget_usd(os.environ.get(ENV_FARM_BUDGET, ""))
    if budget is not None and not isinstance(journal, PostgresJournal):
        raise E.ConfigError(
            f"{ENV_FARM_BUDGET} needs {ENV_JOURNAL_URL} (the farm's database holds the spend)."
        )
    return budget


def reserve_farm_spend(journal: Journal | None, account: str, price_usd: float) -> str | None:
    """Book the price against ``WAVESPEED_FARM_BUDGET_USD`` in the farm's database (its booking id;
    None when no farm budget is set). BudgetExceededError, ConfigError or JournalError: nothing sent."""
    budget = _farm_budget(journal)
    if budget is None or not isinstance(journal, PostgresJournal):
        return None
    booking = os.urandom(12).hex()
    FarmLimits(journal).reserve_spend(account, booking, price_usd, budget)
    return booking


def release_farm_spend(journal: Journal | None, booking: str | None) -> None:
    """Give a booked price back (the submit provably created nothing); best effort."""
    if booking is not None and isinstance(journal, PostgresJournal):
        FarmGate._note(lambda: FarmLimits(journal).release_spend(booking))
