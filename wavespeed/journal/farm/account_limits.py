"""The account's limits, one budget for every worker of a farm, held in its PostgreSQL journal.

* **Per-window submits.** Each admitted submit is a row of ``account_submits``, timed by the
  database's clock at its reply (a submit still being sent counts in every window); a worker is
  admitted only while the account's rows of the last window are fewer than its limit, else it is
  told how long until the oldest leaves the window.
* **Tasks at once.** Each admitted submit holds a row of ``account_slots`` until its task is seen
  finished (by whichever worker sees it: Poll Result, a Batch's wait) or WaveSpeed provably refused
  it. A slot is leased (``SLOT_LEASE_S``): a worker that dies holding one frees it by time.
* **The farm's spend.** ``farm_spend`` holds the price of every submit the farm booked against
  ``WAVESPEED_FARM_BUDGET_USD``; a price is given back when the submit provably created nothing.

Every decision runs in one transaction under an advisory lock per account, so workers are
admitted one at a time, whatever their number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...core import errors as E
from .pg_journal import PostgresJournal

SLOT_LEASE_S = 900.0  # a dead worker's task slot frees after this (a task runs well under it)
RETRY_S = 0.25  # how soon a worker waiting for a task slot asks again
# The time of a submit still being sent: it counts in every window until its reply comes (then it
# counts from the reply, as the account's scheduler does), or until its slot's lease ends.
_SENT = math.inf

ENV_FARM_BUDGET = "WAVESPEED_FARM_BUDGET_USD"


@dataclass(frozen=True)
class AccountLimits:
    """What one account may do: submits per window, tasks at once (None: not limited here)."""

    per_window: int | None
    window_s: float
    at_once: int | None


class FarmLimits:
    """The account limits and the spend of a farm, in its journal's database."""

    def __init__(self, journal: PostgresJournal) -> None:
        self.journal = journal

    def try_admit(self, account: str, limits: AccountLimits, slot: str) -> float | None:
        """Take a submit and a task slot for ``slot`` (None), or say how many seconds to wait
        before asking again (nothing taken)."""
        with self.journal.transaction() as conn:
            self.journal.serialize(conn, account, "account limits")
            now = self.journal.now(conn)
            conn.execute("DELETE FROM account_slots WHERE lease_until < :now", {"now": now})
            conn.execute(
                "DELETE FROM account_submits WHERE account = :account AND (at <= :since OR (at = :sent "
                "AND slot NOT IN (SELECT slot FROM account_slots)))",
                {"account": account, "since": now - limits.window_s, "sent": _SENT},
            )
            times = [float(at) for (at,) in conn.execute(
                "SELECT at FROM account_submits WHERE account = :account ORDER BY at", {"account": account}
            )]  # fmt: skip
            if limits.per_window is not None and len(times) >= limits.per_window:
                frees = times[len(times) - limits.per_window] + limits.window_s - now
                return max(RETRY_S, frees) if math.isfinite(frees) else RETRY_S  # or when a reply comes
            (running,) = conn.execute(
                "SELECT count(*) FROM account_slots WHERE account = :account", {"account": account}
            ).fetchone()
            if limits.at_once is not None and int(running) >= limits.at_once:
                return RETRY_S
            args = {"account": account, "slot": slot, "sent": _SENT, "until": now + SLOT_LEASE_S}
            conn.execute(
                "INSERT INTO account_submits (account, slot, at) VALUES (:account, :slot, :sent)", args
            )
            conn.execute(
                "INSERT INTO account_slots (account, slot, lease_until) VALUES (:account, :slot, :until)",
                args,
            )
            return None

    def accepted(self, slot: str, request_id: str, *, finished: bool) -> None:
        """The submit made task ``request_id``: it counts in the window from now (its reply: the
        server counted it before), and its slot is held until the task is seen finished."""
        with self.journal.transaction() as conn:
            conn.execute(
                "UPDATE account_submits SET at = :now WHERE slot = :slot",
                {"now": self.journal.now(conn), "slot": slot},
            )
            if finished:
                conn.execute("DELETE FROM account_slots WHERE slot = :slot", {"slot": slot})
            else:
                conn.execute(
                    "UPDATE account_slots SET request_id = :rid WHERE slot = :slot",
                    {"rid": request_id, "slot": slot},
                )

    def refused(self, slot: str) -> None:
        """The submit provably created nothing: its slot and its place in the window are given back."""
        with self.journal.transaction() as conn:
            conn.execute("DELETE FROM account_slots WHERE slot = :slot", {"slot": slot})
            conn.execute("DELETE FROM account_submits WHERE slot = :slot", {"slot": slot})

    def finished(self, request_id: str) -> None:
        """Task ``request_id`` was seen finished: its slot frees."""
        with self.journal.transaction() as conn:
            conn.execute("DELETE FROM account_slots WHERE request_id = :rid", {"rid": request_id})

    # ------------------------------------------------------------------ the farm's spend

    def reserve_spend(self, account: str, slot: str, price_usd: float, budget_usd: float) -> float:
        """Book ``price_usd`` against the farm's budget (BudgetExceededError, nothing booked, when it
        would cross it); the farm's spend after it."""
        with self.journal.transaction() as conn:
            self.journal.serialize(conn, "", "farm spend")
            (spent,) = conn.execute("SELECT coalesce(sum(price_usd), 0) FROM farm_spend").fetchone()
            total = round(float(spent) + price_usd, 6)
            if total > budget_usd + 1e-9:
                raise E.BudgetExceededError(
                    f"This task (${price_usd:.2f}) would bring the farm's WaveSpeed spend to ${total:.2f}, "
                    f"over the ${budget_usd:.2f} farm budget ({ENV_FARM_BUDGET}): nothing was submitted; "
                    "raise it, or clear the farm_spend table to start a new budget."
                )
            conn.execute(
                "INSERT INTO farm_spend (slot, account, price_usd, at) VALUES (:slot, :account, :price, :now)",
                {"slot": slot, "account": account, "price": price_usd, "now": self.journal.now(conn)},
            )
            return total

    def spent(self) -> float:
        """What the farm has booked against its budget."""
        with self.journal.transaction() as conn:
            (spent,) = conn.execute("SELECT coalesce(sum(price_usd), 0) FROM farm_spend").fetchone()
        return float(spent)

    def release_spend(self, slot: str) -> None:
        with self.journal.transaction() as conn:
            conn.execute("DELETE FROM farm_spend WHERE slot = :slot", {"slot": slot})


def farm_budget_usd(raw: str) -> float | None:
    """``WAVESPEED_FARM_BUDGET_USD`` as dollars (None when unset); ConfigError for anything else."""
    text = raw.strip()
    if not text:
        return None
    try:
        value = float(text.lstrip("$"))
    except ValueError:
        value = math.nan
    if not (value >= 0 and math.isfinite(value)):
        raise E.ConfigError(
            f"{ENV_FARM_BUDGET}={text!r} is not an amount of US dollars: set it to e.g. 50 or unset it."
        )
    return value
