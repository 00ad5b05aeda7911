"""One poller per account for every task in flight: WaveSpeed's pace, few requests, one budget.

**The pace.** WaveSpeed publishes how to poll ("Task Result Polling Frequency"): at least 2 s
between checks of the same task id, growing intervals for long tasks. The client holds the 2 s in
the one call every check goes through (``get_result``: check_pace.PACE, from the end of one check
to the start of the next); the plan below never asks sooner, so the pace never has to wait.

**The poll plan** (poll_plan.py computes it, poll_book.py applies it; both pure, tested on a fake
clock). A task gives no sign of how far along it is, so every check is a bet that it has finished.

What it knows:

* **Status transitions.** ``created`` while WaveSpeed holds the task (over the account's
  concurrency limit), ``processing`` once inference runs. Past times describe inference, not the
  queue, so the plan's clock starts when the task was last seen ``created`` (at submit if it never
  was); a queued task is looked at every 2..5 s, more slowly the longer it waits.
* **Past inference times of its model**: the journal's ``inference_times`` plus those this process
  saw (the last 200), smoothed (a log-normal kernel around each, Silverman's width on the logs)
  and mixed with a **prior** worth 3 tasks: log-normal, median 6 s, sigma 0.8, because Kontext max
  takes a few seconds with a heavy tail (25.7 s in WaveSpeed's own example reply). A new model is
  planned by the prior alone and each finished task sharpens it.

How it places the checks: the times that minimise the expected time added plus 0.1 s per expected
check (dynamic programming over a fine grid), under rules that hold whatever the history says: two
checks at least 2 s apart, the first within 1 s (a task that fails at once), no gap wider than 5 s
(or a quarter of the task's age) while the learned times say it may still end, and past 99 % of
them gaps that grow with its age (a tenth of it, 2 to 30 s). The first rule alone bounds the cost:
the k-th check is never before a naive poller's (a look at once, then every 2 s), so no task gets
more checks than that poller. The times place the checks next to the likely ends and leave out the
ones no task needs (between the first look and the spread, between the spread and the tail); on a
wide spread a task ending at an unforeseeable moment waits about 1 s whoever checks every 2 s, so
there the gain is in requests, not time. Every waiter's deadline gets a last look 1 s before it
(a check due within 2 s of that last look becomes it).

What it assumes: a task's time is a draw from its model's recent ones (a slower day shows up as new
history within a few tasks; the prior's tail and the growing gaps cover the rest), and every check
costs the same.

**One budget for the account.** A token bucket (``WAVESPEED_POLL_BUDGET_RPS``, default 300, allowed
1..10000) bounds all waits together. 300 because WaveSpeed's own SDK polls every task once a
second, so Silver's 300 tasks at once already send it 300 requests a second; the plan needs about
at most 0.5 checks a second per task in flight (2 s apart), so ~600 tasks are never slowed, and
beyond that each loses a little lag instead of the API being flooded. Under 1 a second a finished
task could wait minutes to be seen (issue 17 case 8); over 10000 it is no limit: both are refused
in one line when read, and a submit reads it first (wavespeed/tasks/accounts.py), so nothing is
paid for a wait that cannot work. When more checks are due than tokens, the earliest due goes
first, so no task waits more than (tasks in flight) / budget seconds past its plan.

Polls run on a small pool of threads, so one slow reply does not stall the others; several waiters
of one task share its polls, and only its replies wake them.

**The one way to wait.** The nodes, scripts, benches and tests all wait through a Poller: the account's
(``account_poller``, keyed by the client's ``account_tag``), or ``wait_for`` / ``submit_and_wait`` on
top of it for a one-line wait. The client only looks (``get_result``); it has no wait loop of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol, TypedDict

from ..api.reply_types import Prediction
from ..api.retry_rule import later_hint
from ..core import errors as E
from ..core.vocabulary import CancelCheck
from .poll_book import (
    DEFAULT_BUDGET_RPS,
    ENV_BUDGET,
    MAX_BUDGET_RPS,
    MIN_BUDGET_RPS,
    History,
    PollBook,
    TaskEntry,
    budget_from_env,
    check_budget,
)
from .poll_plan import PollPlan

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack for **kwargs needs Python 3.12

    from ..api.kontext_request import KontextRequest

__all__ = [
    "DEFAULT_BUDGET_RPS",
    "ENV_BUDGET",
    "MAX_BUDGET_RPS",
    "MIN_BUDGET_RPS",
    "PollBook",
    "PollPlan",
    "Poller",
    "ResultSource",
    "WaitOptions",
    "account_poller",
    "budget_from_env",
    "check_budget",
    "poller_for",
    "reset_pollers",
    "submit_and_wait",
    "wait_for",
]

ProgressCallback = Callable[[Prediction, float], None]
# (request_id, deadline, cancel) -> the task's state now; cancel turns true once nobody waits for the
# task any more, so a poll stuck in a slow reply is abandoned (its worker thread comes back).
Fetch = Callable[[str, float, CancelCheck], Prediction]
_POLL_DEADLINE_S = 30.0
_SLICE_S = 0.1


class WaitOptions(TypedDict, total=False):
    """``Poller.wait``'s options, for the one-liners that pass them on."""

    model: str
    timeout_s: float
    cancel: CancelCheck | None
    progress: ProgressCallback | None
    first: Prediction | None
    age_s: float | None


class ResultSource(Protocol):
    """What a poller needs of a client (WaveSpeedClient): the account's name and one look at a task."""

    @property
    def account_tag(self) -> str: ...

    def get_result(
        self, request_id: str, *, deadline: float | None = None, cancel: CancelCheck | None = None
    ) -> Prediction: ...


class Submitter(ResultSource, Protocol):
    """A ResultSource that also submits (WaveSpeedClient), for ``submit_and_wait``."""

    def submit(self, request: KontextRequest, *, cancel: CancelCheck | None = None) -> Prediction: ...


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

    @classmethod
    def reading(
        cls, client: ResultSource, *, budget_rps: float | None = None, history: History | None = None
    ) -> Poller:
        """A poller whose polls are ``client.get_result`` (each poll's deadline and Cancel passed on)."""
        return cls(
            lambda rid, deadline, cancel: client.get_result(rid, deadline=deadline, cancel=cancel),
            budget_rps=budget_rps,
            history=history,
        )

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
        """Poll until the task completes: the completed prediction, or TaskFailedError,
        WaitTimeoutError, CancelledError (the task keeps running; its id fetches it later), or the
        error of a poll that failed past the client's retries.

        Args:
            timeout_s: the whole wait's budget.
            progress: called with each reply and the seconds waited so far.
            first: a reply already in hand (e.g. the submit's): no immediate poll; a terminal one
                costs no request at all.
            age_s: how long ago the task was submitted, if known (a fresh task's first look then
                follows the plan too).
        """
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
                        raise E.CancelledError(later_hint("Cancelled", request_id), request_id=request_id)
                    now = self._clock()
                    if now >= deadline:
                        raise E.WaitTimeoutError(
                            later_hint("Timed out waiting for WaveSpeed", request_id), request_id=request_id
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

    def _poll(self, entry: TaskEntry) -> None:
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

    def _wake(self, entry: TaskEntry) -> None:
        """After a reply (lock held): the task's waiters, and the loop (the task's next poll moved)."""
        signal = self._signals.get(entry.request_id)
        if signal is not None:
            signal.notify_all()
        self._cond.notify()


def _finished(prediction: Prediction) -> Prediction:
    if prediction.is_failed:  # failed, cancelled, timeout, deleted: terminal, each with its own line
        raise prediction.failure()
    return prediction


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


def account_poller(client: ResultSource, history: History | None = None) -> Poller:
    """The process-wide poller of the client's account (``client.account_tag``), polling through
    ``client``; ``history`` (model -> past inference seconds) is used by the call that makes it."""
    return poller_for(client.account_tag, lambda: Poller.reading(client, history=history))


def wait_for(client: ResultSource, request_id: str, **options: Unpack[WaitOptions]) -> Prediction:
    """Wait for one task through its account's poller (``Poller.wait``, same options): the one-liner
    for scripts, benches and tests."""
    return account_poller(client).wait(request_id, **options)


def submit_and_wait(client: Submitter, request: KontextRequest, **options: Unpack[WaitOptions]) -> Prediction:
    """Submit (with the options' Cancel), then ``wait_for`` the task of ``request.model`` with the
    submit's reply in hand (a sync-mode reply that is already final costs no poll)."""
    first = client.submit(request, cancel=options.get("cancel"))
    wait: WaitOptions = {"model": request.model, **options, "first": first}
    return wait_for(client, first.id, **wait)
