"""Submit admission per account: live within WaveSpeed's per-minute limit instead of failing on 429.

One SubmitScheduler per account and process (``scheduler_for``), shared by every node, because the
limit belongs to the account, not to a node. The decisions, and why:

* WaveSpeed's 429 on submit (in its JSON envelope: the client raises RateLimitedError for nothing
  else) means "not accepted": no task exists and nothing was charged, so submitting again can never
  bill twice. A 429 without the envelope (a proxy's) is an uncertain submit, never re-sent. Waiting is the fix, not an error: the caller sees status text ("waiting for
  WaveSpeed's rate limit, resets in ~37 s"), never an exception, unless the wait would pass its
  deadline or Cancel is pressed.
* How long to wait: the docs say the limits reset every minute and document no Retry-After. After a
  429 everyone waits until our oldest accepted submit of the last minute is a minute old (the
  server's window cannot have begun before it and still be full), or a whole minute if we know of
  none, plus jitter; a Retry-After the server does send wins.
* Learn the limit: at a 429, the number of our submits accepted within the last minute is an upper
  bound of the account's limit. From then on later submits queue here, first come first served, until
  a sliding one-minute window of accept times has room, so the API is not hammered. Accept times are
  taken when the reply arrives (after the server counted it), so our window covers the server's.
  A learned limit is forgotten after ten quiet windows, so a tier upgrade is noticed; a configured one
  (``WAVESPEED_RATE_LIMIT_PER_MIN``, or ``WAVESPEED_ACCOUNT_TIER`` bronze/silver/gold/ultra) holds
  from the first submit. ``WAVESPEED_RATE_WINDOW_S`` changes the minute (for scaled-down tests).
* The concurrency limit needs nothing here: WaveSpeed accepts the task and keeps it ``created``.
"""

from __future__ import annotations

import bisect
import math
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from ..core import errors as E
from ..core.vocabulary import CancelCheck
from ..settings.env_numbers import positive_float_from_env

T = TypeVar("T")
StatusCallback = Callable[[str], None]

ENV_TIER = "WAVESPEED_ACCOUNT_TIER"
ENV_RATE_LIMIT = "WAVESPEED_RATE_LIMIT_PER_MIN"
ENV_WINDOW = "WAVESPEED_RATE_WINDOW_S"
TIER_LIMITS_PER_MIN: dict[str, int] = {"bronze": 2, "silver": 500, "gold": 3000, "ultra": 5000}
# Tasks running at once per level: a farm shares this budget (tasks/farm_gate.py); alone, WaveSpeed
# keeps the extra tasks waiting in "created" and nothing is needed.
TIER_AT_ONCE: dict[str, int] = {"bronze": 2, "silver": 300, "gold": 3000, "ultra": 10000}
ENV_AT_ONCE = "WAVESPEED_TASKS_AT_ONCE"
WINDOW_S = 60.0
LEARNED_TTL_WINDOWS = 10
_SLICE_S = 0.1  # how often a waiter looks at Cancel (the client uses the same slice)


class SubmitScheduler:
    """Admit submits of one account within its per-minute limit; thread-safe, FIFO."""

    def __init__(
        self,
        *,
        limit_per_window: int | None = None,
        window_s: float = WINDOW_S,
        jitter_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit_per_window is not None and limit_per_window < 1:
            raise ValueError("limit_per_window must be >= 1")
        if not (window_s > 0 and math.isfinite(window_s)):
            raise ValueError("window_s must be a finite number > 0")
        self.window_s = float(window_s)
        self.jitter_s = min(2.0, 0.05 * self.window_s) if jitter_s is None else float(jitter_s)
        self.configured_limit = limit_per_window
        self._clock = clock
        self._cond = threading.Condition()
        self._accepted: deque[float] = deque()  # reply times of accepted submits, last window only
        self._in_flight = 0
        self._waiting: list[int] = []  # tickets in FIFO order
        self._next_ticket = 0
        self._hold_until = 0.0  # after a 429 nobody submits before this
        self._learned: int | None = None
        self._learned_at = 0.0
        self.rate_limited = 0  # 429s seen (for status and the bench)
        self.accepted = 0

    @property
    def limit(self) -> int | None:
        """The limit in force: the configured one, else a learned one that has not expired."""
        with self._cond:
            return self._limit(self._clock())

    def submit(
        self,
        fn: Callable[[], T],
        *,
        deadline: float | None = None,
        cancel: CancelCheck | None = None,
        status: StatusCallback | None = None,
    ) -> T:
        """Call ``fn`` (one POST) when the account's window has room; on RateLimitedError wait and
        call it again. Other errors pass through. Raises RateLimitedError if the wait would pass the
        deadline (``time.monotonic()`` based), CancelledError on Cancel: ``cancel`` is asked last
        right before each call of ``fn``, so after a Cancel no POST starts from this queue."""
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._waiting.append(ticket)
        try:
            while True:
                self._admit(ticket, deadline, cancel, status)
                if cancel is not None and cancel():  # pressed between admission and the POST
                    self._finished(accepted=False)
                    raise E.CancelledError("Cancelled before the submit was sent; nothing was sent.")
                try:
                    result = fn()
                except E.RateLimitedError as exc:
                    self._refused(ticket, getattr(exc, "retry_after_s", None))
                    continue
                except BaseException:
                    self._finished(accepted=False)
                    raise
                self._finished(accepted=True)
                return result
        finally:
            with self._cond:
                if ticket in self._waiting:
                    self._waiting.remove(ticket)
                self._cond.notify_all()

    # ------------------------------------------------------------------ internals (lock held: _ names)

    def _limit(self, now: float) -> int | None:
        if self.configured_limit is not None:
            return self.configured_limit
        if self._learned is not None and now - self._learned_at > LEARNED_TTL_WINDOWS * self.window_s:
            self._learned = None
        return self._learned

    def _prune(self, now: float) -> None:
        while self._accepted and self._accepted[0] <= now - self.window_s:
            self._accepted.popleft()

    def _ready_at(self, ticket: int, now: float) -> float | None:
        """When this ticket may submit (<= now: at once), or None: wait for a reply or a turn."""
        if self._waiting and self._waiting[0] != ticket:
            return None  # first come, first served
        ready = max(now, self._hold_until)
        limit = self._limit(now)
        if limit is not None and len(self._accepted) + self._in_flight >= limit:
            if len(self._accepted) + self._in_flight - limit >= len(self._accepted):
                return None  # only replies still to come can free room
            ready = max(ready, self._accepted[len(self._accepted) + self._in_flight - limit] + self.window_s)
        return ready

    def _admit(
        self, ticket: int, deadline: float | None, cancel: CancelCheck | None, status: StatusCallback | None
    ) -> None:
        """Block until the ticket may submit; it then counts as in flight."""
        shown = ""
        rounds = 0
        with self._cond:
            while True:
                rounds += 1
                if cancel is not None and cancel():
                    raise E.CancelledError(
                        "Cancelled while waiting for WaveSpeed's rate limit; nothing was sent."
                    )
                now = self._clock()
                self._prune(now)
                ready = self._ready_at(ticket, now)
                if ready is not None and ready <= now:
                    self._waiting.remove(ticket)
                    self._in_flight += 1
                    self._cond.notify_all()
                    return
                if ready is not None and deadline is not None and ready > deadline:
                    raise E.RateLimitedError(
                        f"WaveSpeed's rate limit ({self._describe_limit(now)}) would not let this task in "
                        f"before its deadline (about {ready - now:.0f} s more); nothing was sent or charged: "
                        "queue fewer tasks at once, or upgrade the account level.",
                        status=429,
                    )
                if status is not None and rounds > 1:  # not for a turn that comes at once
                    text = self._status_text(ticket, ready, now)
                    if text != shown:
                        shown = text
                        status(text)
                wake = _SLICE_S if ready is None else min(_SLICE_S, ready - now)
                self._cond.wait(max(0.001, wake))

    def _refused(self, ticket: int, retry_after_s: float | None) -> None:
        with self._cond:
            now = self._clock()
            self._in_flight -= 1
            self.rate_limited += 1
            self._prune(now)
            ours = len(self._accepted)
            if ours >= 1 and self.configured_limit is None:
                # Within one wait (several submits refused together) the largest count is the best
                # bound: replies of accepted submits may arrive after another one's 429.
                in_episode = self._learned is not None and now < self._hold_until
                self._learned = max(self._learned or 0, ours) if in_episode else ours
            self._learned_at = now
            if retry_after_s is not None and math.isfinite(retry_after_s) and retry_after_s >= 0:
                wait = min(retry_after_s, 2 * self.window_s)
            elif self._accepted:
                wait = self._accepted[0] + self.window_s - now
            else:
                wait = self.window_s
            self._hold_until = max(self._hold_until, now + max(0.0, wait) + random.uniform(0, self.jitter_s))
            # Back into the queue by its ticket: it came first, it goes first.
            bisect.insort(self._waiting, ticket)
            self._cond.notify_all()

    def _finished(self, *, accepted: bool) -> None:
        with self._cond:
            self._in_flight -= 1
            if accepted:
                now = self._clock()
                self.accepted += 1
                self._accepted.append(now)
                if self._learned is not None and now < self._hold_until:
                    self._learned = max(self._learned, len(self._accepted))  # counted before the 429
            self._cond.notify_all()

    def _describe_limit(self, now: float) -> str:
        limit = self._limit(now)
        per = "minute" if self.window_s == WINDOW_S else f"{self.window_s:g} s"
        return f"{limit} tasks a {per}" if limit is not None else "tasks a minute"

    def _status_text(self, ticket: int, ready: float | None, now: float) -> str:
        ahead = self._waiting.index(ticket) if ticket in self._waiting else 0
        text = "waiting for WaveSpeed's rate limit"
        if ready is not None and ready > now:
            text += f", resets in ~{math.ceil(ready - now)} s"
        if ahead:
            text += f" · {ahead} ahead"
        return text


def limit_from_env() -> int | None:
    """The configured per-minute limit: WAVESPEED_RATE_LIMIT_PER_MIN, else WAVESPEED_ACCOUNT_TIER."""
    raw = os.environ.get(ENV_RATE_LIMIT, "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise E.ConfigError(
                f"{ENV_RATE_LIMIT} must be a whole number >= 1 (tasks a minute), not {raw!r}."
            )
        return value
    tier = os.environ.get(ENV_TIER, "").strip().lower()
    if not tier:
        return None
    if tier not in TIER_LIMITS_PER_MIN:
        raise E.ConfigError(f"{ENV_TIER} must be one of {', '.join(TIER_LIMITS_PER_MIN)}, not {tier!r}.")
    return TIER_LIMITS_PER_MIN[tier]


def at_once_from_env() -> int | None:
    """The account's tasks at once: WAVESPEED_TASKS_AT_ONCE, else WAVESPEED_ACCOUNT_TIER's."""
    raw = os.environ.get(ENV_AT_ONCE, "").strip()
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise E.ConfigError(f"{ENV_AT_ONCE} must be a whole number >= 1 (tasks at once), not {raw!r}.")
        return int(raw)
    limit_from_env()  # an unknown tier is refused there, in one line
    return TIER_AT_ONCE.get(os.environ.get(ENV_TIER, "").strip().lower())


def window_from_env() -> float:
    return positive_float_from_env(ENV_WINDOW, WINDOW_S, "seconds")


_schedulers: dict[str, SubmitScheduler] = {}
_schedulers_lock = threading.Lock()


def scheduler_for(account: str) -> SubmitScheduler:
    """The process-wide scheduler of one account (any stable key-free tag: the client's account_tag);
    settings are read from the environment when it is first made."""
    with _schedulers_lock:
        found = _schedulers.get(account)
        if found is None:
            found = _schedulers[account] = SubmitScheduler(
                limit_per_window=limit_from_env(), window_s=window_from_env()
            )
        return found


def reset_schedulers() -> None:
    """Forget every scheduler (tests; a restart does the same)."""
    with _schedulers_lock:
        _schedulers.clear()
