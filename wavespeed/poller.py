"""One poller per account for every task in flight: few requests, small lag, a global budget.

Waiting by polling each task on a fixed short period costs about 3.3 requests per second per task
and floods the API with hundreds of tasks in flight. The decisions here, and why:

* **Each task follows its model's poll plan** (poll_plan.py: what it knows, what it assumes). In
  short: the plan's clock starts when the task is last seen queued (``created``) or at submit; its
  polls are dense where the model's past times (journal plus this process; a heavy-tailed prior
  while there are few) say completion is likely, sparse elsewhere, and expected to cost at most
  ``per_task_rps`` (1.5) requests per second of inference, the submit and the download included.
  No gap exceeds ``max_gap_s``, and every waiter's deadline gets a last look before it.
* **One budget for the account.** A token bucket (``budget_rps``, env
  ``WAVESPEED_POLL_BUDGET_RPS``, default 300, allowed 1..10000) bounds the requests of all waits
  together. 300 because the official SDK polls every task once a second, so Silver's 300 tasks at
  once already make 300 requests a second from WaveSpeed's own client; the plan needs about 1.2 a
  second per task in flight, so up to ~250 tasks are never slowed by it, and above that each task
  loses a little lag instead of the API being flooded. Below 1 a second a finished task could wait
  minutes to be seen (issue 17 case 8), above 10000 it is no limit: both are refused in one line.
* **Due polls go first come, first served** when more are due than tokens: a poll due earlier (the
  plan put it where completion is likely) is sent first, and no task waits more than (tasks in
  flight) / budget seconds past its due time.
* Polls run on a small pool of threads, so one slow reply does not stall the others; several waiters
  of one task share its polls. The decisions live in ``PollBook`` (no threads, no clock of its
  own), so tests drive them with a fake clock.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import errors as E
from .env_settings import bounded_float_from_env
from .models import Prediction
from .poll_plan import PollPlan, Schedule, TokenBucket, next_due
from .vocabulary import QUEUED_STATUSES, CancelCheck

__all__ = ["Poller", "PollBook", "PollPlan", "budget_from_env", "check_budget", "poller_for", "reset_pollers"]

ProgressCallback = Callable[[Prediction, float], None]
# (request_id, deadline, cancel) -> the task's state now; cancel turns true once nobody waits for the
# task any more, so a poll stuck in a slow reply is abandoned (its worker thread comes back).
Fetch = Callable[[str, float, CancelCheck], Prediction]
History = Callable[[str], Sequence[float]]  # model -> past inference times in seconds

ENV_BUDGET = "WAVESPEED_POLL_BUDGET_RPS"
DEFAULT_BUDGET_RPS = 300.0
MIN_BUDGET_RPS = 1.0
MAX_BUDGET_RPS = 10000.0
HISTORY_KEEP = 200
_POLL_DEADLINE_S = 30.0
_SLICE_S = 0.1
_FRESH_S = 60.0  # a task submitted longer ago than this is looked at at once


def budget_from_env() -> float:
    """WAVESPEED_POLL_BUDGET_RPS, checked when it is read (ConfigError in one line if out of range)."""
    return bounded_float_from_env(
        ENV_BUDGET, DEFAULT_BUDGET_RPS, MIN_BUDGET_RPS, MAX_BUDGET_RPS, "requests per second"
    )


def check_budget(budget_rps: float) -> float:
    """A budget given in code, held to the same range as the setting."""
    value = float(budget_rps)
    if not (MIN_BUDGET_RPS <= value <= MAX_BUDGET_RPS):
        raise ValueError(
            f"budget_rps must be from {MIN_BUDGET_RPS:g} to {MAX_BUDGET_RPS:g} requests per second, "
            f"not {budget_rps!r}."
        )
    return value


@dataclass
class _Entry:
    request_id: str
    model: str
    start: float  # when it was last seen queued (or submitted): the inference clock starts here
    schedule: Schedule
    queued_since: float | None = None
    due: float = 0.0
    last_poll: float | None = None
    in_flight: bool = False
    deadlines: list[float] = field(default_factory=list)  # one per waiter
    version: int = 0
    prediction: Prediction | None = None
    error: BaseException | None = None
    done: bool = False
    polls: int = 0


class PollBook:
    """The poller's decisions, without threads or a clock: who joins, which polls are due and may be
    sent within the budget, what a reply changes. Not thread-safe: the Poller holds its lock."""

    def __init__(
        self, now: float, *, budget_rps: float, plan: PollPlan | None = None, history: History | None = None
    ) -> None:
        self.plan = plan or PollPlan()
        self.bucket = TokenBucket(check_budget(budget_rps), now)
        self.entries: dict[str, _Entry] = {}
        self._source = history
        self._past: dict[str, deque[float]] = {}
        self._schedules: dict[str, tuple[int, Schedule]] = {}
        self.sent = 0

    def join(
        self,
        request_id: str,
        model: str,
        now: float,
        deadline: float,
        first: Prediction | None,
        age_s: float | None,
    ) -> _Entry:
        """A waiter for a task: a new entry (first poll by the plan, or at once for a task of
        unknown age with no reply in hand), or one more deadline on the task's entry."""
        entry = self.entries.get(request_id)
        if entry is None:
            entry = _Entry(request_id, model, start=now, schedule=self.schedule(model))
            entry.prediction = first
            fresh = age_s is not None and 0 <= age_s < _FRESH_S
            if fresh:
                entry.start = now - float(age_s or 0.0)
            entry.deadlines.append(deadline)
            entry.due = self._next(entry, now, looked_now=False) if first is not None or fresh else now
            self.entries[request_id] = entry
        else:
            entry.deadlines.append(deadline)
            if not entry.in_flight:
                entry.due = min(entry.due, self._next(entry, now, looked_now=False))
        return entry

    def leave(self, entry: _Entry, deadline: float) -> None:
        with contextlib.suppress(ValueError):
            entry.deadlines.remove(deadline)
        if not entry.deadlines and self.entries.get(entry.request_id) is entry:
            del self.entries[entry.request_id]

    def take_due(self, now: float) -> list[_Entry]:
        """The polls to send now: due ones, earliest due first, as many as the budget allows."""
        due = sorted(
            (e for e in self.entries.values() if not e.in_flight and not e.done and e.due <= now),
            key=lambda e: e.due,
        )
        granted = self.bucket.take(now, len(due)) if due else 0
        for entry in due[:granted]:
            entry.in_flight = True
            entry.last_poll = now
            self.sent += 1
        return due[:granted]

    def wake_in(self, now: float) -> float:
        """Seconds until something may be due (a poll's time, or the next token when polls wait)."""
        waiting = [e.due for e in self.entries.values() if not e.in_flight and not e.done]
        if not waiting:
            return 1.0
        first = min(waiting)
        if first <= now:
            return max(0.002, self.bucket.wait_s(now))
        return max(0.002, first - now)

    def on_reply(self, entry: _Entry, prediction: Prediction, now: float) -> None:
        entry.in_flight = False
        entry.polls += 1
        entry.prediction = prediction
        entry.version += 1
        if prediction.is_terminal:
            entry.done = True
            if prediction.is_completed and prediction.inference_ms:
                self.record(entry.model, prediction.inference_ms / 1000.0)
        elif prediction.status in QUEUED_STATUSES:
            entry.queued_since = entry.queued_since if entry.queued_since is not None else now
            entry.start = now  # not started yet: its inference clock has not begun
            entry.due = self._next(entry, now, looked_now=True)
        else:
            entry.queued_since = None
            entry.due = self._next(entry, now, looked_now=True)

    def on_error(self, entry: _Entry, exc: BaseException) -> None:
        entry.in_flight = False
        entry.error = exc
        entry.done = True

    def record(self, model: str, inference_s: float) -> None:
        if inference_s > 0 and math.isfinite(inference_s):
            self._past_of(model).append(inference_s)

    def schedule(self, model: str) -> Schedule:
        """The model's plan, rebuilt when its history has grown (by one while short, else by 10 %)."""
        past = self._past_of(model)
        cached = self._schedules.get(model)
        n = len(past)
        if cached is None or (n != cached[0] and (n < 20 or n >= cached[0] * 1.1 or n < cached[0])):
            cached = (n, self.plan.schedule(list(past)))
            self._schedules[model] = cached
        return cached[1]

    def _past_of(self, model: str) -> deque[float]:
        past = self._past.get(model)
        if past is None:
            past = self._past[model] = deque(maxlen=HISTORY_KEEP)
            if self._source is not None:
                # The history only tunes the schedule: a broken source must not stop a wait.
                with contextlib.suppress(Exception):
                    past.extend(
                        x for x in (float(v) for v in self._source(model)) if x > 0 and math.isfinite(x)
                    )
        return past

    def _next(self, entry: _Entry, now: float, *, looked_now: bool) -> float:
        if entry.queued_since is not None:
            due = now + self.plan.queued_delay(now - entry.queued_since)
            for deadline in entry.deadlines:  # a queued task's waiters get their last look too
                last = deadline - self.plan.final_lead_s
                if not (looked_now and now >= last) and due > last:
                    due = max(now + self.plan.min_step_s if looked_now else now, last)
            return due
        return next_due(
            entry.schedule,
            self.plan,
            start=entry.start,
            now=now,
            deadlines=entry.deadlines,
            looked_now=looked_now,
        )


class Poller:
    """Waits for many tasks of one account with one request budget. Thread-safe; a daemon thread
    starts on first use."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        budget_rps: float | None = None,
        history: History | None = None,
        plan: PollPlan | None = None,
        workers: int = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self.budget_rps = budget_from_env() if budget_rps is None else check_budget(budget_rps)
        self._clock = clock
        self._book = PollBook(clock(), budget_rps=self.budget_rps, plan=plan, history=history)
        self.plan = self._book.plan
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)  # the polling loop waits on it
        self._signals: dict[str, threading.Condition] = {}  # per task, on the same lock: its waiters
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wavespeed-poll")
        self._thread: threading.Thread | None = None
        self._closed = False
        self.requests = 0

    # ------------------------------------------------------------------ public

    def wait(
        self,
        request_id: str,
        *,
        model: str = "",
        timeout_s: float = 600.0,
        cancel: CancelCheck | None = None,
        progress: ProgressCallback | None = None,
        first: Prediction | None = None,
        age_s: float | None = None,
    ) -> Prediction:
        """Like WaveSpeedClient.wait: the completed prediction, or TaskFailedError, WaitTimeoutError,
        CancelledError (the task keeps running; its id fetches it later). ``age_s``: how long ago the
        task was submitted, if known (a fresh task's first look then follows the plan too)."""
        start = self._clock()
        deadline = start + timeout_s
        if first is not None:
            if progress is not None:
                progress(first, 0.0)
            if first.is_terminal:
                return _finished(first)
        with self._cond:
            entry = self._book.join(request_id, model, start, deadline, first, age_s)
            signal = self._signals.setdefault(request_id, threading.Condition(self._lock))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="wavespeed-poller", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        seen = 0
        try:
            with self._cond:
                while True:
                    if entry.version != seen and entry.prediction is not None and progress is not None:
                        seen = entry.version
                        prediction = entry.prediction
                        self._lock.release()
                        try:
                            progress(prediction, self._clock() - start)
                        finally:
                            self._lock.acquire()
                    if entry.error is not None:
                        raise entry.error
                    if entry.done and entry.prediction is not None:
                        return _finished(entry.prediction)
                    if cancel is not None and cancel():
                        raise E.CancelledError(_later("Cancelled", request_id), request_id=request_id)
                    now = self._clock()
                    if now >= deadline:
                        raise E.WaitTimeoutError(
                            _later("Timed out waiting for WaveSpeed", request_id), request_id=request_id
                        )
                    # Woken by this task's replies only (hundreds of waiters stay asleep), or to look
                    # at Cancel and the deadline.
                    signal.wait(min(_SLICE_S, deadline - now))
        finally:
            with self._cond:
                self._book.leave(entry, deadline)
                if request_id not in self._book.entries:
                    self._signals.pop(request_id, None)

    def in_flight(self) -> int:
        with self._cond:
            return len(self._book.entries)

    def record(self, model: str, inference_s: float) -> None:
        """Remember one finished task's inference time (also done for every task this poller sees)."""
        with self._cond:
            self._book.record(model, inference_s)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            for signal in self._signals.values():
                signal.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ the polling loop

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                now = self._clock()
                for entry in self._book.take_due(now):
                    self._pool.submit(self._poll, entry)
                self._cond.wait(self._book.wake_in(self._clock()))

    def _poll(self, entry: _Entry) -> None:
        def abandoned() -> bool:
            return self._closed or not entry.deadlines

        try:
            prediction = self._fetch(entry.request_id, self._clock() + _POLL_DEADLINE_S, abandoned)
        except BaseException as exc:
            with self._cond:
                self.requests += 1
                self._book.on_error(entry, exc)
                self._wake(entry)
            return
        now = self._clock()
        with self._cond:
            self.requests += 1
            self._book.on_reply(entry, prediction, now)
            self._wake(entry)

    def _wake(self, entry: _Entry) -> None:
        """After a reply (lock held): the task's waiters, and the loop (the task's next poll moved)."""
        signal = self._signals.get(entry.request_id)
        if signal is not None:
            signal.notify_all()
        self._cond.notify()


def _finished(prediction: Prediction) -> Prediction:
    if prediction.is_failed:
        raise E.TaskFailedError(
            f"WaveSpeed task {prediction.id} {prediction.status}: {prediction.error or 'no reason given'}"
            + (f" (code {prediction.code})" if prediction.code else ""),
            request_id=prediction.id,
            code=prediction.code,
        )
    return prediction


def _later(what: str, request_id: str) -> str:
    return (
        f"{what}; task {request_id} may still finish and is already paid for: paste this request id "
        "into WaveSpeed Poll Result to fetch it later without a new charge."
    )


_pollers: dict[str, Poller] = {}
_pollers_lock = threading.Lock()


def poller_for(account: str, make: Callable[[], Poller]) -> Poller:
    """The process-wide poller of one account (a key-free tag), made by ``make`` on first use."""
    with _pollers_lock:
        found = _pollers.get(account)
        if found is None:
            found = _pollers[account] = make()
        return found


def reset_pollers() -> None:
    """Stop and forget every poller (tests; a restart does the same)."""
    with _pollers_lock:
        pollers = list(_pollers.values())
        _pollers.clear()
    for poller in pollers:
        poller.close()
