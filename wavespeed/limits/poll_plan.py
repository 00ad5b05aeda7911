"""The poll plan of one task, as pure functions: a model's past inference times and a prior become a
smoothed distribution (``Distribution``), and the distribution and a request budget become poll
times (``PollPlan.schedule``): density proportional to the square root of the hazard, scaled so the
expected requests meet the budget. What the plan knows and assumes, and why: poller.py's docstring.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

# 0.05 s .. 30 min, log-spaced (3.3 % apart): where S(t) and f(t) are evaluated
_GRID: tuple[float, ...] = tuple(0.05 * math.exp(math.log(36000.0) * i / 319) for i in range(320))
_SQRT2 = math.sqrt(2.0)
_MAX_POLLS = 4000


@dataclass(frozen=True)
class Prior:
    """What a model with no history is assumed to take: log-normal, worth ``weight`` past tasks."""

    median_s: float = 6.0
    sigma: float = 0.8
    weight: float = 3.0


class Distribution:
    """One model's inference times: past ones smoothed, mixed with the prior; S(t), f(t) on a grid."""

    def __init__(self, history: Sequence[float], prior: Prior = Prior()) -> None:
        times = [float(x) for x in history if 0 < x < _GRID[-1] and math.isfinite(x)]
        logs = [math.log(x) for x in times]
        width = _bandwidth(logs)
        parts = [(math.log(prior.median_s), prior.sigma, prior.weight)] + [(m, width, 1.0) for m in logs]
        total = sum(w for _, _, w in parts)
        self.samples = len(times)
        self._sorted = self.times = sorted(times)
        self._prior, self._prior_mu, self._total = prior, math.log(prior.median_s), total
        # The plain mean of the past times (the kernels' widths would inflate it), blended with the prior's.
        prior_mean = prior.median_s * math.exp(prior.sigma**2 / 2)
        self.mean_s = (prior.weight * prior_mean + sum(times)) / total
        survival: list[float] = []
        density: list[float] = []
        for t in _GRID:
            lt = math.log(t)
            s_sum = f_sum = 0.0
            for m, s, w in parts:
                z = (lt - m) / s
                s_sum += w * 0.5 * math.erfc(z / _SQRT2)
                f_sum += w * math.exp(-0.5 * z * z) / (s * t)
            survival.append(s_sum / total)
            density.append(f_sum / total / math.sqrt(2 * math.pi))
        self.survival_grid = tuple(survival)
        # Cumulative sqrt-hazard (trapezoid on the grid): polls go at equal steps of it.
        root = [math.sqrt(f / s) if s > 1e-12 else 0.0 for f, s in zip(density, survival, strict=True)]
        acc = [0.0]
        for i in range(1, len(_GRID)):
            acc.append(acc[-1] + 0.5 * (root[i] + root[i - 1]) * (_GRID[i] - _GRID[i - 1]))
        self.sqrt_hazard_cum = tuple(acc)

    def survival(self, t: float) -> float:
        """P(inference > t), smoothed: interpolated on the grid."""
        return _interp(_GRID, self.survival_grid, t, left=1.0)

    def survival_seen(self, t: float) -> float:
        """P(inference > t) from the past times as they are (plus the prior): what polls will cost.
        The smoothing that shapes the plan widens the spread, so it would overstate the cost."""
        z = (math.log(t) - self._prior_mu) / self._prior.sigma if t > 0 else -math.inf
        running = len(self._sorted) - bisect.bisect_right(self._sorted, t)
        return (self._prior.weight * 0.5 * math.erfc(z / _SQRT2) + running) / self._total

    def horizon(self, tail: float = 1e-4) -> float:
        """Where fewer than ``tail`` of the tasks are still running: the plan's end."""
        for t, s in zip(_GRID, self.survival_grid, strict=True):
            if s < tail:
                return t
        return _GRID[-1]


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


def _interp(xs: Sequence[float], ys: Sequence[float], x: float, *, left: float) -> float:
    if x <= xs[0]:
        return left
    if x >= xs[-1]:
        return ys[-1]
    i = bisect.bisect_right(xs, x)
    x0, x1 = xs[i - 1], xs[i]
    return ys[i - 1] + (ys[i] - ys[i - 1]) * (x - x0) / (x1 - x0)


@dataclass(frozen=True)
class Schedule:
    """Poll times of one task, in seconds after it started processing; between and past them, gaps of
    at most max_gap_s, and at most tail_gap_s once the task has outlived every past time."""

    offsets: tuple[float, ...]
    expected_polls: float
    budget_polls: float
    mean_s: float
    max_gap_s: float
    min_step_s: float
    tail_gap_s: float
    tail_from_s: float  # the longest past time (inf without history: the prior's tail then rules)
    fixed_requests: int = 2
    min_polls: float = 3.0

    def latest_after(self, last_s: float, polls: int = 0) -> float:
        """The latest next poll after one at last_s: max_gap_s on; past all history, the next point
        of a tail_gap_s grid that starts half a gap after the longest past time, but no sooner than
        the task's own seconds pay for it (``polls`` so far, one per tail_gap_s, the submit and the
        download included): a history biased short (the first few of a burst to finish) cannot
        make a long task spend more than its budget."""
        cap = last_s + self.max_gap_s
        if math.isinf(self.tail_from_s):
            return cap
        j = max(0, math.floor((last_s + self.min_step_s - self.tail_from_s) / self.tail_gap_s - 0.5) + 1)
        # The first min_polls are every task's (see PollPlan.schedule); beyond, its seconds pay.
        paid = (polls + 1 + self.fixed_requests) * self.tail_gap_s if polls + 1 > self.min_polls else 0.0
        return min(cap, max(self.tail_from_s + (j + 0.5) * self.tail_gap_s, paid))

    def next_offset(self, elapsed_s: float, polls: int = 0) -> float:
        """The first planned poll at least min_step_s after elapsed_s (seconds since the start);
        ``polls``: how many this task had so far."""
        i = bisect.bisect_left(self.offsets, elapsed_s + self.min_step_s)
        limit = self.latest_after(elapsed_s, polls)
        return min(self.offsets[i], limit) if i < len(self.offsets) else limit


@dataclass(frozen=True)
class PollPlan:
    """The settings of the plan; ``schedule(history)`` turns a model's past times into poll times."""

    per_task_rps: float = 1.5
    fixed_requests: int = 2  # the submit and the download
    aim: float = 0.95  # plan 5 % under the budget: the distribution is an estimate, the budget a promise
    min_step_s: float = 0.05
    max_gap_s: float = 4.0
    min_polls: float = 3.0  # a task expected under ~3.5 s still gets a useful plan (see schedule)
    final_lead_s: float = 1.0
    queued_min_s: float = 0.5
    queued_max_s: float = 2.0
    prior: Prior = field(default_factory=Prior)

    def schedule(self, history: Sequence[float]) -> Schedule:
        """The cheapest-lag poll times whose expected requests fit per_task_rps x expected inference.

        Floors keep the plan useful where the budget alone would not: no gap over ``max_gap_s``, at
        least ``min_polls`` (the submit and the download alone are 2 requests, so a task expected
        under ~3.5 s could not otherwise buy a look near its end), and a task that outlives every
        past time (a slow day, a longer spread) is looked at every 1 / (aim x per_task_rps) seconds:
        it pays for those extra seconds at the per-second budget itself, and keeps a lag under ~0.7 s.
        """
        dist = Distribution(history, self.prior)
        budget = max(self.min_polls, self.aim * self.per_task_rps * dist.mean_s - self.fixed_requests)
        tail_from = max(dist.times) if dist.times else math.inf
        gap = 1.0 / (self.aim * self.per_task_rps)
        shape = Schedule(
            (),
            0.0,
            budget,
            dist.mean_s,
            self.max_gap_s,
            self.min_step_s,
            gap,
            tail_from,
            self.fixed_requests,
            self.min_polls,
        )
        body = dataclasses.replace(shape, tail_from_s=math.inf)  # the tail pays for itself
        end = dist.horizon()
        lo, hi = math.log(1e-4), math.log(1e3)  # scale of the sqrt-hazard steps: small = dense
        best = self._offsets(dist, math.exp(hi), end, body)
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            offsets = self._offsets(dist, math.exp(mid), end, body)
            if _expected_polls(dist, offsets, body) <= budget:
                best, hi = offsets, mid
            else:
                lo = mid
        expected = _expected_polls(dist, best, body)
        # The max gap is a floor too: where even one look per max_gap_s costs more than the budget
        # (a 17 s model at 0.5 req/s), that sparsest plan is the one used, and the budget says so.
        return dataclasses.replace(
            shape, offsets=best, expected_polls=expected, budget_polls=max(budget, expected)
        )

    def _offsets(self, dist: Distribution, scale: float, end: float, shape: Schedule) -> tuple[float, ...]:
        cum = dist.sqrt_hazard_cum
        out: list[float] = []
        last = 0.0
        k = 0.5
        while len(out) < _MAX_POLLS:
            target = k * scale
            t = _interp(cum, _GRID, target, left=_GRID[0]) if target < cum[-1] else math.inf
            t = max(t, last + self.min_step_s)
            while t > shape.latest_after(last) and shape.latest_after(last) < end:
                last = shape.latest_after(last)
                out.append(last)
            t = max(t, last + self.min_step_s)
            if t >= end:
                break
            out.append(t)
            last = t
            k += 1.0
        return tuple(out)

    def queued_delay(self, queued_s: float) -> float:
        """A queued task waits for a slot: look every 0.5..2 s, more slowly the longer it waits."""
        return min(self.queued_max_s, max(self.queued_min_s, queued_s / 4.0))


def _expected_polls(dist: Distribution, offsets: Sequence[float], shape: Schedule) -> float:
    """Polls a task of this distribution gets: the one at t_k happens if it still ran at t_(k-1)."""
    total, before = 0.0, 0.0
    for t in offsets:
        total += dist.survival_seen(before)
        before = t
    # Past the plan (S < 1e-4), one poll per gap for the few still running (the last one included).
    tail = dist.survival_seen(before)
    return total + tail * (1.0 + max(0.0, dist.mean_s - before) / (shape.latest_after(before) - before))


def next_due(
    schedule: Schedule,
    plan: PollPlan,
    *,
    start: float,
    now: float,
    deadlines: Sequence[float],
    looked_now: bool,
    polls: int = 0,
) -> float:
    """When to poll a processing task next (absolute time): its schedule, but every waiter's deadline
    gets a last look ``final_lead_s`` before it (at once if that is already past). ``looked_now``: a
    reply came in at ``now`` (it is itself the last look if it fell in that final window); ``polls``:
    the task's polls so far."""
    due = start + schedule.next_offset(now - start, polls)
    for deadline in deadlines:
        last_look = deadline - plan.final_lead_s
        if due <= last_look or (looked_now and now >= last_look):
            continue
        due = max(now + plan.min_step_s if looked_now else now, min(due, last_look))
    return due


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
