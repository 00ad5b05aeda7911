"""One poller per account for every task in flight: few requests, small lag, a global budget.

Waiting by polling each task on a fixed short period costs about 3.3 requests per second per task
and floods the API with hundreds of tasks in flight. The decisions here, and why:

* **Poll where completion is likely.** A model's inference times are consistent, so past ones (the
  journal's, and those seen by this poller) say when a task will end. With enough history a task
  is polled once shortly before the central part of that distribution (its 10th..90th
  percentiles, ``PollPlan``), then on a grid across it whose step spends about ``per_task_rps``
  requests per second of inference but never exceeds ``max_step_s`` (the lag bound for most tasks);
  past it the step grows towards ``tail_cap_s``, never slower than the ``per_task_rps`` pace. Without history (fewer than ``MIN_HISTORY`` samples)
  it falls back to the fast schedule the client always used (0.1 s, x1.5, 0.3 s cap).
* **One budget for the account.** A token bucket (``budget_rps``, env
  ``WAVESPEED_POLL_BUDGET_RPS``, default 50) bounds the requests of all waits together. When more
  polls are due than tokens, the tasks most likely to have finished since their last poll go first
  (hazard from the same history), so hundreds of tasks lose a little lag each instead of flooding.
* **Queued is not processing.** A task WaveSpeed holds in ``created`` (over the account's
  concurrency limit) is polled slowly and its clock starts when it is first seen processing.
* Polls run on a small pool of threads, so one slow reply does not stall the others; several waiters
  of one task share its polls.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import errors as E
from .env_settings import positive_float_from_env
from .models import Prediction
from .vocabulary import QUEUED_STATUSES, CancelCheck

ProgressCallback = Callable[[Prediction, float], None]
# (request_id, deadline, cancel) -> the task's state now; cancel turns true once nobody waits for the
# task any more, so a poll stuck in a slow reply is abandoned (its worker thread comes back).
Fetch = Callable[[str, float, CancelCheck], Prediction]
History = Callable[[str], Sequence[float]]  # model -> past inference times in seconds

ENV_BUDGET = "WAVESPEED_POLL_BUDGET_RPS"
DEFAULT_BUDGET_RPS = 50.0
MIN_HISTORY = 5
HISTORY_KEEP = 200
_POLL_DEADLINE_S = 30.0
_SLICE_S = 0.1
_FRESH_S = 60.0  # a task submitted longer ago than this is looked at at once


@dataclass(frozen=True)
class PollPlan:
    """When to poll a processing task, from its model's past inference times."""

    per_task_rps: float = 1.2
    min_step_s: float = 0.08
    max_step_s: float = 0.25
    tail_cap_s: float = 2.0
    lead_gap_s: float = 8.0  # before the likely window, look at least this often (early failures)
    fallback: tuple[float, float, float] = (0.1, 1.5, 0.3)  # first, factor, cap without history

    def next_delay(self, history: Sequence[float], elapsed_s: float, polls_processing: int) -> float:
        """Seconds from now until the next poll of a task processing for elapsed_s (history sorted)."""
        if len(history) < MIN_HISTORY:
            first, factor, cap = self.fallback
            return min(cap, first * factor**polls_processing)
        lo, hi = quantile(history, 0.1), quantile(history, 0.9)
        median = quantile(history, 0.5)
        core_polls = max(2.0, self.per_task_rps * median - 2.0)
        step = min(self.max_step_s, max(self.min_step_s, (hi - lo) / core_polls))
        start = max(0.0, lo - step)
        if elapsed_s < start:
            return min(start - elapsed_s, self.lead_gap_s)
        if elapsed_s <= hi + step:
            return step
        # Past the likely window: back off towards tail_cap_s, but never below the pace the promise
        # allows (per_task_rps polls per second of the task's run so far). A task far longer than
        # every one seen before (a slow day, a new model) then keeps a lag of about 1/per_task_rps
        # instead of tail_cap_s, and its polls still stay within per_task_rps of its inference.
        backoff = min(self.tail_cap_s, max(step, (elapsed_s - hi) / 2.0))
        pace = (polls_processing + 1) / self.per_task_rps - elapsed_s
        return min(backoff, max(step, pace))

    @staticmethod
    def queued_delay(queued_s: float) -> float:
        """A queued task waits for a slot: look every 0.5..2 s, more slowly the longer it waits."""
        return min(2.0, max(0.5, queued_s / 4.0))


def quantile(data: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of sorted data (q in 0..1)."""
    pos = (len(data) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return float(data[lo] + (data[hi] - data[lo]) * (pos - lo))


def cdf(data: Sequence[float], x: float) -> float:
    """Fraction of sorted data <= x."""
    return bisect.bisect_right(data, x) / len(data) if data else 0.0


def budget_from_env() -> float:
    return positive_float_from_env(ENV_BUDGET, DEFAULT_BUDGET_RPS, "requests per second")


@dataclass
class _Entry:
    request_id: str
    model: str
    start: float  # when it was last seen queued (or submitted): the inference clock starts here
    queued_since: float | None = None
    due: float = 0.0
    last_poll: float = 0.0
    polls_processing: int = 0
    in_flight: bool = False
    waiters: int = 0
    version: int = 0
    prediction: Prediction | None = None
    error: BaseException | None = None
    done: bool = False
    polls: int = 0
    history: list[float] = field(default_factory=list)


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
        self.budget_rps = budget_from_env() if budget_rps is None else float(budget_rps)
        self._history_source = history
        self.plan = plan or PollPlan()
        self._clock = clock
        self._cond = threading.Condition()
        self._entries: dict[str, _Entry] = {}
        self._seen: dict[str, deque[float]] = {}
        self._tokens = self.budget_rps
        self._tokens_at = clock()
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
        entry = self._join(request_id, model, first, age_s)
        seen = 0
        try:
            with self._cond:
                while True:
                    if entry.version != seen and entry.prediction is not None and progress is not None:
                        seen = entry.version
                        prediction = entry.prediction
                        self._cond.release()
                        try:
                            progress(prediction, self._clock() - start)
                        finally:
                            self._cond.acquire()
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
                    self._cond.wait(min(_SLICE_S, deadline - now))
        finally:
            self._leave(entry)

    def in_flight(self) -> int:
        with self._cond:
            return len(self._entries)

    def record(self, model: str, inference_s: float) -> None:
        """Remember one finished task's inference time (also done for every task this poller sees)."""
        if inference_s > 0 and math.isfinite(inference_s):
            with self._cond:
                self._seen.setdefault(model, deque(maxlen=HISTORY_KEEP)).append(inference_s)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ waiters

    def _join(self, request_id: str, model: str, first: Prediction | None, age_s: float | None) -> _Entry:
        now = self._clock()
        with self._cond:
            entry = self._entries.get(request_id)
            if entry is None:
                entry = _Entry(request_id, model, start=now, history=self._history(model))
                entry.prediction = first
                # With a reply in hand or a fresh task, the first poll follows the plan; else look now.
                fresh = age_s is not None and 0 <= age_s < _FRESH_S
                if fresh:
                    entry.start = now - float(age_s or 0.0)
                entry.due = now + self._delay(entry, now) if first is not None or fresh else now
                self._entries[request_id] = entry
            entry.waiters += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="wavespeed-poller", daemon=True)
                self._thread.start()
            self._cond.notify_all()
            return entry

    def _leave(self, entry: _Entry) -> None:
        with self._cond:
            entry.waiters -= 1
            if entry.waiters <= 0 and self._entries.get(entry.request_id) is entry:
                del self._entries[entry.request_id]

    def _history(self, model: str) -> list[float]:
        past: list[float] = list(self._seen.get(model, ()))
        if self._history_source is not None and len(past) < HISTORY_KEEP:
            # The history only tunes the schedule: a broken source must not stop a wait.
            with contextlib.suppress(Exception):
                past += [float(x) for x in self._history_source(model)][-HISTORY_KEEP:]
        return sorted(x for x in past if x > 0 and math.isfinite(x))

    # ------------------------------------------------------------------ the polling loop

    def _delay(self, entry: _Entry, now: float) -> float:
        status = entry.prediction.status if entry.prediction is not None else ""
        if entry.queued_since is not None and status in QUEUED_STATUSES:
            return self.plan.queued_delay(now - entry.queued_since)
        return self.plan.next_delay(entry.history, now - entry.start, entry.polls_processing)

    def _priority(self, entry: _Entry, now: float) -> float:
        """Chance the task finished since its last poll (history), else how overdue it is."""
        if len(entry.history) >= MIN_HISTORY and entry.queued_since is None:
            before = cdf(entry.history, entry.last_poll - entry.start)
            return (cdf(entry.history, now - entry.start) - before) / max(1e-9, 1.0 - before)
        return min(1.0, (now - entry.due) / 10.0)

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                now = self._clock()
                self._tokens = min(self.budget_rps, self._tokens + (now - self._tokens_at) * self.budget_rps)
                self._tokens_at = now
                due = [e for e in self._entries.values() if not e.in_flight and not e.done and e.due <= now]
                if due and self._tokens >= 1.0:
                    if len(due) > self._tokens:
                        due.sort(key=lambda e: self._priority(e, now), reverse=True)
                    for entry in due[: int(self._tokens)]:
                        self._tokens -= 1.0
                        entry.in_flight = True
                        entry.last_poll = now
                        self._pool.submit(self._poll, entry)
                    continue
                waits = [e.due - now for e in self._entries.values() if not e.in_flight and not e.done]
                if due:
                    waits.append((1.0 - self._tokens) / self.budget_rps)
                self._cond.wait(max(0.002, min(waits, default=1.0)))

    def _poll(self, entry: _Entry) -> None:
        def abandoned() -> bool:
            return self._closed or entry.waiters <= 0

        try:
            prediction = self._fetch(entry.request_id, self._clock() + _POLL_DEADLINE_S, abandoned)
        except BaseException as exc:
            with self._cond:
                self.requests += 1
                entry.in_flight = False
                entry.error = exc
                entry.done = True
                self._cond.notify_all()
            return
        now = self._clock()
        with self._cond:
            self.requests += 1
            entry.polls += 1
            entry.in_flight = False
            entry.prediction = prediction
            entry.version += 1
            if prediction.is_terminal:
                entry.done = True
                if prediction.is_completed and prediction.inference_ms:
                    self._seen.setdefault(entry.model, deque(maxlen=HISTORY_KEEP)).append(
                        prediction.inference_ms / 1000.0
                    )
            elif prediction.status in QUEUED_STATUSES:
                entry.queued_since = entry.queued_since if entry.queued_since is not None else now
                entry.start = now  # not started yet: its inference clock has not begun
                entry.due = now + self._delay(entry, now)
            else:
                entry.queued_since = None
                entry.polls_processing += 1
                entry.due = now + self._delay(entry, now)
            self._cond.notify_all()


def _finished(prediction: Prediction) -> Prediction:
    if prediction.is_failed:  # failed, cancelled, timeout, deleted: terminal, each with its own line
        raise prediction.failure()
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
