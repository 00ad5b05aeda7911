"""The poll plan of one task, as pure functions: a model's past inference times and a prior become a
smoothed distribution (``Distribution``), and the distribution becomes check times
(``PollPlan.schedule``) that keep WaveSpeed's pace. What the plan knows and assumes, and why:
poller.py's docstring.

The rules every plan keeps, whatever the history (tests/wavespeed/limits/test_poll_plan.py tries
them with Hypothesis):

* two checks of one task are at least ``gap_s`` (2 s, the published pace) apart, and the first is
  no earlier than the submit; so a task of any length gets no more checks than a poller that looks
  at once and then every 2 s (its k-th check is never before that poller's);
* the first check comes within ``first_look_s`` (1 s): a task that fails at once (a bad input
  URL, 1402) is seen at once;
* no gap is wider than ``max_gap(t)`` (5 s, or a quarter of the task's age) while the learned
  times say the task may still end: an early failure is seen soon;
* once a task has outlived 99 % of the learned times it is a long task, and the gaps grow with its
  age (a tenth of it, 2 s to 30 s: "gradually increase", as WaveSpeed asks).

Within them the checks go where they cut the expected time added most: the plan minimises
E[time added] + ``check_cost_s`` x E[checks] by dynamic programming over candidate check times (a
grid 0.05 s apart, 0.25 % of the age later on). A check is worth it when it saves at least
``check_cost_s`` of expected waiting.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..api.kontext_request import CHECK_GAP_S

_SQRT2 = math.sqrt(2.0)
_LONGEST_S = 3600.0  # the grid ends here whatever the history says (a plan is for one wait)


@dataclass(frozen=True)
class Prior:
    """What a model with no history is assumed to take: log-normal, worth ``weight`` past tasks."""

    median_s: float = 6.0
    sigma: float = 0.8
    weight: float = 3.0


class Distribution:
    """One model's inference times: past ones smoothed (a log-normal kernel around each, Silverman's
    width on the logs), mixed with the prior. ``survival(t)`` = P(inference > t)."""

    def __init__(self, history: Sequence[float], prior: Prior = Prior()) -> None:
        times = [float(x) for x in history if 0 < x < _LONGEST_S and math.isfinite(x)]
        logs = [math.log(x) for x in times]
        width = _bandwidth(logs)
        self._parts = [(math.log(prior.median_s), prior.sigma, prior.weight)] + [
            (m, width, 1.0) for m in logs
        ]
        self._total = sum(w for _, _, w in self._parts)
        self.samples = len(times)
        self.times = sorted(times)
        prior_mean = prior.median_s * math.exp(prior.sigma**2 / 2)
        self.mean_s = (prior.weight * prior_mean + sum(times)) / self._total

    def survival(self, t: float) -> float:
        """P(inference > t)."""
        if t <= 0:
            return 1.0
        lt = math.log(t)
        return sum(w * 0.5 * math.erfc((lt - m) / (s * _SQRT2)) for m, s, w in self._parts) / self._total


def _bandwidth(logs: Sequence[float]) -> float:
    """Silverman's rule on the log times, floored at 3 % (no kernel narrower than the clock's jitter)."""
    n = len(logs)
    if n < 2:
        return 0.25
    mean = sum(logs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (n - 1))
    ordered = sorted(logs)
    iqr = ordered[(3 * n) // 4] - ordered[n // 4]
    spread = min(sd, iqr / 1.34) if iqr > 0 else sd
    return max(0.03, 0.9 * spread / math.pow(n, 0.2))


@dataclass(frozen=True)
class Schedule:
    """Check times of one task, in seconds after it started (submitted, or last seen queued); past
    ``long_from_s`` the gaps grow with its age (``tail_gap``)."""

    offsets: tuple[float, ...]
    long_from_s: float
    gap_s: float
    tail_share: float
    tail_max_gap_s: float
    mean_s: float

    def tail_gap(self, elapsed_s: float) -> float:
        """The gap after a check at ``elapsed_s`` of a long task: a tenth of its age, 2 s to 30 s."""
        return min(self.tail_max_gap_s, max(self.gap_s, self.tail_share * elapsed_s))

    def next_offset(self, elapsed_s: float, last_s: float | None = None) -> float:
        """The next check (seconds since the start) at ``elapsed_s``: the first planned one not yet
        past, and at least ``gap_s`` after ``last_s``, when the task's last check ended (None: it
        had none). A planned check less than half a gap after ``last_s + gap_s`` is the one that
        check came just before (its reply took a moment): kept and moved to the gap, not skipped.
        Past the plan: at once if the task was never checked, else the tail's growing gap."""
        if last_s is None:
            floor = lo = elapsed_s
        else:
            floor = max(elapsed_s, last_s + self.gap_s)
            lo = max(elapsed_s, last_s + self.gap_s / 2)
        i = bisect.bisect_left(self.offsets, lo)
        if i < len(self.offsets):
            return max(self.offsets[i], floor)
        if last_s is None:
            return elapsed_s
        return max(elapsed_s, last_s + self.tail_gap(last_s))


@dataclass(frozen=True)
class PollPlan:
    """The settings of the plan; ``schedule(history)`` turns a model's past times into check times."""

    gap_s: float = CHECK_GAP_S  # WaveSpeed's minimum between two checks of one task
    check_cost_s: float = 0.1  # a check must save this much expected waiting to be made
    first_look_s: float = 1.0  # the first check comes this soon at the latest
    max_gap_s: float = 5.0  # ... and no gap wider (or a quarter of the age, if more) before the tail
    max_gap_share: float = 0.25
    long_tail: float = 0.01  # a task outliving 99 % of the learned times is a long task
    tail_share: float = 0.1  # its gaps: a tenth of its age,
    tail_max_gap_s: float = 30.0  # at most this
    step_s: float = 0.05  # the candidate grid: this apart, or step_share of the age if more
    step_share: float = 0.001
    final_lead_s: float = 1.0
    queued_max_s: float = 5.0
    prior: Prior = field(default_factory=Prior)

    def max_gap(self, t: float) -> float:
        return max(self.max_gap_s, self.max_gap_share * t)

    def schedule(self, history: Sequence[float]) -> Schedule:
        """The check times minimising E[time added] + check_cost_s x E[checks] under the rules of
        the module docstring (dynamic programming on a grid; a few ms)."""
        dist = Distribution(history, self.prior)
        ts, surv, area, long_from = self._grid(dist)
        shape = Schedule((), long_from, self.gap_s, self.tail_share, self.tail_max_gap_s, dist.mean_s)
        n = len(ts)
        cost = self.check_cost_s
        # best[i]: the least expected cost from a check at ts[i] on, weighted by P(still running
        # then); after a check at ts[i], the next at ts[j] costs a check if the task still ran at
        # ts[i], and waiting (ts[j] - x) for a task ending at x in between.
        best = [0.0] * n
        nxt = [-1] * n
        for i in range(n - 1, -1, -1):
            if ts[i] >= long_from:  # a long task: the tail's growing gaps, roughly one more check
                best[i] = surv[i] * (cost + 0.5 * shape.tail_gap(ts[i]))
                continue
            lo = bisect.bisect_left(ts, ts[i] + self.gap_s - 1e-9)
            hi = bisect.bisect_right(ts, ts[i] + self.max_gap(ts[i]) + 1e-9)
            choice, value = -1, math.inf
            for j in range(lo, min(hi, n)):
                v = (cost + ts[j] - ts[i]) * surv[i] - (area[j] - area[i]) + best[j]
                if v < value:
                    choice, value = j, v
            best[i], nxt[i] = value, choice
        # The first check: any time from the submit on (no check before it), within first_look_s.
        hi = bisect.bisect_right(ts, self.first_look_s + 1e-9)
        first = min(range(hi), key=lambda j: cost + ts[j] - area[j] + best[j])
        offsets = [ts[first]]
        j = first
        while nxt[j] >= 0:
            j = nxt[j]
            offsets.append(ts[j])
        return dataclasses.replace(shape, offsets=tuple(offsets))

    def _grid(self, dist: Distribution) -> tuple[list[float], list[float], list[float], float]:
        """Candidate check times, P(still running) at each and its running integral, and where a
        task becomes long; the grid reaches one max gap past that, so every step has a choice."""
        ts, surv, area = [0.0], [1.0], [0.0]
        long_from, end = math.inf, math.inf
        while ts[-1] < end and ts[-1] < _LONGEST_S:
            t = ts[-1] + max(self.step_s, self.step_share * ts[-1])
            s = dist.survival(t)
            area.append(area[-1] + 0.5 * (s + surv[-1]) * (t - ts[-1]))
            ts.append(t)
            surv.append(s)
            if s <= self.long_tail and math.isinf(long_from):
                long_from = t
                end = t + self.max_gap(t) + self.step_s
        return ts, surv, area, min(long_from, ts[-1])

    def queued_delay(self, queued_s: float) -> float:
        """A queued task waits for a slot: look every gap_s, more slowly the longer it waits."""
        return min(self.queued_max_s, max(self.gap_s, queued_s / 4.0))


def next_due(
    schedule: Schedule,
    plan: PollPlan,
    *,
    start: float,
    now: float,
    last: float | None,
    deadlines: Sequence[float],
) -> float:
    """When to check a processing task next (absolute time): its schedule (``start``: when its
    clock started; ``last``: when its last check ended, None if never), with every waiter's last
    look (``last_looks``)."""
    offset = schedule.next_offset(now - start, None if last is None else last - start)
    return last_looks(start + offset, plan, now=now, last=last, deadlines=deadlines)


def last_looks(
    due: float, plan: PollPlan, *, now: float, last: float | None, deadlines: Sequence[float]
) -> float:
    """``due``, moved so that every waiter's deadline gets a last look ``final_lead_s`` before it:
    a check due within a gap of that last look (it would push the last look past the deadline)
    becomes the last look itself. A check that ended in that final window was the last look. Never
    within ``gap_s`` of ``last``."""
    earliest = now if last is None else max(now, last + plan.gap_s)
    for deadline in deadlines:
        last_look = deadline - plan.final_lead_s
        if last is not None and last >= last_look:
            continue
        if due > last_look - plan.gap_s:
            due = last_look
    return max(due, earliest)


class TokenBucket:
    """The account's budget: ``rate`` requests a second, bursts of at most ``capacity``."""

    def __init__(self, rate: float, now: float, capacity: float | None = None) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate if capacity is None else capacity)
        self.tokens = self.capacity
        self._at = now

    def refill(self, now: float) -> float:
        """Tokens available at ``now`` (a clock going backwards adds none)."""
        if now > self._at:
            self.tokens = min(self.capacity, self.tokens + (now - self._at) * self.rate)
            self._at = now
        return self.tokens

    def take(self, now: float, wanted: int) -> int:
        """Take up to ``wanted`` whole tokens; how many were granted."""
        granted = min(wanted, int(self.refill(now)))
        self.tokens -= granted
        return max(0, granted)

    def wait_s(self, now: float) -> float:
        """Seconds until one whole token is there."""
        return max(0.0, (1.0 - self.refill(now)) / self.rate)
