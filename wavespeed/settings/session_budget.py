"""The per-process spend counter behind ``WAVESPEED_SESSION_BUDGET_USD``.

A session is one ComfyUI process: the counter starts at zero on each start. It counts what the
server accepted (a submit that provably created no task is given back), never what was reused.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

from ..core import errors as E

ENV_SESSION_BUDGET = "WAVESPEED_SESSION_BUDGET_USD"


def session_budget_usd(env: Mapping[str, str] | None = None) -> float | None:
    """The per-session budget from ``WAVESPEED_SESSION_BUDGET_USD`` (None when unset)."""
    env = os.environ if env is None else env
    raw = (env.get(ENV_SESSION_BUDGET) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw.lstrip("$"))
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise E.ConfigError(
            f"{ENV_SESSION_BUDGET}={raw!r} is not an amount of US dollars: set it to e.g. 5 or 2.50, "
            "or unset it for no budget."
        )
    return value


class SessionSpend:
    """What this process has committed to paying (accepted submissions); thread-safe.

    ``reserve`` checks and books the price in one step before the request is sent, so concurrent
    submits cannot jointly overshoot the budget; ``release`` gives it back when the server
    provably did not accept the task."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spent = 0.0

    @property
    def spent_usd(self) -> float:
        with self._lock:
            return self._spent

    def reserve(self, price_usd: float, budget_usd: float | None) -> float:
        """Book ``price_usd``; raise BudgetExceededError (booking nothing) if it would cross the budget."""
        with self._lock:
            total = round(self._spent + price_usd, 6)
            if budget_usd is not None and total > budget_usd + 1e-9:
                raise E.BudgetExceededError(
                    f"This task (${price_usd:.2f}) would bring this session's WaveSpeed spend to "
                    f"${total:.2f}, over the ${budget_usd:.2f} budget ({ENV_SESSION_BUDGET}): raise the "
                    "budget or restart ComfyUI to reset it."
                )
            self._spent = total
            return total

    def release(self, price_usd: float) -> None:
        with self._lock:
            self._spent = max(0.0, round(self._spent - price_usd, 6))

    def reset(self) -> None:
        with self._lock:
            self._spent = 0.0
