"""The poller's decisions without threads or a clock of their own (so tests drive them with a fake
clock): who waits for which task, which polls are due and fit the account's budget, and what a reply
changes. The plan of one task is poll_plan.py's; why it is so is in poller.py's docstring.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..api.reply_types import Prediction
from ..core.vocabulary import QUEUED_STATUSES
from ..settings.env_numbers import bounded_float_from_env
from .poll_plan import PollPlan, Schedule, TokenBucket, last_looks, next_due

History = Callable[[str], Sequence[float]]  # model -> past inference times in seconds

ENV_BUDGET = "WAVESPEED_POLL_BUDGET_RPS"
DEFAULT_BUDGET_RPS = 300.0
MIN_BUDGET_RPS = 1.0
MAX_BUDGET_RPS = 10000.0
HISTORY_KEEP = 200
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
class TaskEntry:
    request_id: str
    model: str
    start: float  # when it was last seen queued (or submitted): the inference clock starts here
    schedule: Schedule
    queued_since: float | None = None
    due: float = 0.0
    last_poll: float | None = None  # when its last check was sent
    last_end: float | None = None  # when its last check's reply (or failure) came: the gap runs from here
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
        self.entries: dict[str, TaskEntry] = {}
        self._source = history
        self._past: dict[str, deque[float]] = {}
        self._schedules: dict[str, tuple[int, Schedule]] = {}  # model -> (records when built, plan)
        self._records: dict[str, int] = {}  # model -> times recorded so far (the deque forgets)
        self.sent = 0

    def join(
        self,
        request_id: str,
        model: str,
        now: float,
        deadline: float,
        first: Prediction | None,
        age_s: float | None,
    ) -> TaskEntry:
        """A waiter for a task: a new entry (first poll by the plan, or at once for a task of
        unknown age with no reply in hand), or one more deadline on the task's entry."""
        entry = self.entries.get(request_id)
        if entry is None:
            entry = TaskEntry(request_id, model, start=now, schedule=self.schedule(model))
            entry.prediction = first
            fresh = age_s is not None and 0 <= age_s < _FRESH_S
            if fresh:
                entry.start = now - float(age_s or 0.0)
            entry.deadlines.append(deadline)
            if first is not None or fresh:
                entry.due = self._next(entry, now)
            else:  # a task of unknown age: looked at once (unless its deadline's last look is near)
                entry.due = last_looks(now, self.plan, now=now, last=None, deadlines=entry.deadlines)
            self.entries[request_id] = entry
        else:
            entry.deadlines.append(deadline)
            if not entry.in_flight:
                entry.due = min(entry.due, self._next(entry, now))
        return entry

    def leave(self, entry: TaskEntry, deadline: float) -> None:
        with contextlib.suppress(ValueError):
            entry.deadlines.remove(deadline)
        if not entry.deadlines and self.entries.get(entry.request_id) is entry:
            del self.entries[entry.request_id]

    def take_due(self, now: float) -> list[TaskEntry]:
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

    def on_reply(self, entry: TaskEntry, prediction: Prediction, now: float) -> None:
        entry.in_flight = False
        entry.last_end = now
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
            entry.due = self._next(entry, now)
        else:
            entry.queued_since = None
            entry.due = self._next(entry, now)

    def on_error(self, entry: TaskEntry, exc: BaseException) -> None:
        entry.in_flight = False
        entry.error = exc
        entry.done = True

    def record(self, model: str, inference_s: float) -> None:
        if inference_s > 0 and math.isfinite(inference_s):
            self._past_of(model).append(inference_s)
            self._records[model] = self._records.get(model, 0) + 1

    def schedule(self, model: str) -> Schedule:
        """The model's plan, rebuilt once new times are a tenth of its history (each while it is short):
        a plan costs ~15 ms, and hundreds of tasks finishing must not rebuild it hundreds of times."""
        past = self._past_of(model)
        cached = self._schedules.get(model)
        records = self._records.get(model, 0)
        if cached is None or records - cached[0] >= max(1.0, 0.1 * len(past)):
            cached = (records, self.plan.schedule(list(past)))
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

    def _next(self, entry: TaskEntry, now: float) -> float:
        """The entry's next check: by its plan, never within a gap of its last check's end, and
        each waiter's deadline with its last look."""
        last = entry.last_end
        if (
            entry.queued_since is not None
        ):  # a queued task is looked at every 2..5 s, its waiters' last looks too
            due = now if last is None else last + self.plan.queued_delay(now - entry.queued_since)
            return last_looks(due, self.plan, now=now, last=last, deadlines=entry.deadlines)
        return next_due(
            entry.schedule, self.plan, start=entry.start, now=now, last=last, deadlines=entry.deadlines
        )
