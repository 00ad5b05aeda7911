"""Account tiers: the per-minute submission window and the concurrency limit of a WaveSpeed account.

WAVESPEED_API.md section 8: Bronze (every new account) allows 2 images a minute and 2 running at
once, Silver 500 and 300, Gold 3000 and 3000, Ultra 5000 and 10000. Over the per-minute rate a
submit gets HTTP 429 (the docs say the limits reset every minute and document no Retry-After, so
none is sent unless asked for); over the concurrency limit a task is accepted but waits in
``created`` until a slot frees ("if you submit a 3rd, it will wait until one finishes").

Decisions where the docs are silent:
  * The window is fixed (it "resets every minute"), aligned to the first submit after the tier was
    configured (so a test's burst of submits always shares one window, however slowly it starts),
    and counts accepted tasks (one per submit): a refused submit does not count.
  * Slots are handed out first come, first served. A task's start is computed once, when it is
    accepted, from the end times of the tasks holding slots, so a task's status stays a pure
    function of the clock (tasks.py): the wait for a slot is simply extra time in ``created``.
  * ``minute_s`` scales the minute down for tests and demos (e.g. 10 s).
"""

from __future__ import annotations

import heapq
import math
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Tier:
    """One account level: accepted tasks per window, tasks processing at once (None: no limit)."""

    name: str
    per_minute: int | None
    concurrency: int | None


TIERS: dict[str, Tier] = {
    "bronze": Tier("bronze", 2, 2),
    "silver": Tier("silver", 500, 300),
    "gold": Tier("gold", 3000, 3000),
    "ultra": Tier("ultra", 5000, 10000),
    "none": Tier("none", None, None),
}


def tier_named(name: str | Tier) -> Tier:
    """The Tier for a name (bronze, silver, gold, ultra, none) or a Tier itself."""
    if isinstance(name, Tier):
        return name
    tier = TIERS.get(str(name).strip().lower())
    if tier is None:
        raise ValueError(f"unknown tier {name!r}; expected one of {', '.join(TIERS)}")
    return tier


class Account:
    """The limits of one account: admit() for the per-minute window, start_at() for the slots."""

    def __init__(self, tier: Tier, minute_s: float) -> None:
        if not (isinstance(minute_s, (int, float)) and minute_s > 0 and math.isfinite(minute_s)):
            raise ValueError("minute_s must be a finite number > 0")
        self.tier = tier
        self.minute_s = float(minute_s)
        self._epoch: float | None = None  # set by the first submit: windows are aligned to it
        self._window = -1
        self._count = 0
        self._ends: list[float] = []  # min-heap of the end times of the tasks holding slots
        self._lock = threading.Lock()
        self.refused = 0

    def resets_in(self, now: float) -> float:
        """Seconds until the current window ends (a whole minute before the first submit)."""
        if self._epoch is None:
            return self.minute_s
        index = math.floor((now - self._epoch) / self.minute_s)
        return max(0.0, self._epoch + (index + 1) * self.minute_s - now)

    def admit(self, now: float) -> bool:
        """Count one accepted submit in the current window; False (and not counted) if it is full."""
        limit = self.tier.per_minute
        with self._lock:
            if self._epoch is None:
                self._epoch = now
            index = math.floor((now - self._epoch) / self.minute_s)
            if index != self._window:
                self._window, self._count = index, 0
            if limit is not None and self._count >= limit:
                self.refused += 1
                return False
            self._count += 1
            return True

    def start_at(self, ready_at: float, duration_s: float) -> float:
        """Take a slot for a task ready at ready_at that runs duration_s (inf: never ends); return
        when it starts processing (ready_at, or when the earliest slot frees)."""
        limit = self.tier.concurrency
        if limit is None:
            return ready_at
        with self._lock:
            start = ready_at
            if len(self._ends) >= limit:
                start = max(ready_at, heapq.heappop(self._ends))
            heapq.heappush(self._ends, start + duration_s)
            return start
