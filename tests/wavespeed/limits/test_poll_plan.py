"""The poll plan and the poller's decisions (wavespeed/limits/poll_plan.py, PollBook in wavespeed/limits/poll_book.py),
driven by a fake clock: no sleeps, no timing. Properties tried by Hypothesis: any history, any task
length, any budget in the allowed range, any set of tasks."""

from __future__ import annotations

import asyncio
import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import pytest
from hypothesis import HealthCheck, assume, example, given, settings, strategies as st
from wavespeed_kontext_pack.wavespeed.api.reply_types import Prediction
from wavespeed_kontext_pack.wavespeed.core import errors as E
from wavespeed_kontext_pack.wavespeed.limits.poll_plan import PollPlan, Schedule, TokenBucket
from wavespeed_kontext_pack.wavespeed.limits.poller import (
    MAX_BUDGET_RPS,
    MIN_BUDGET_RPS,
    PollBook,
    Poller,
    budget_from_env,
)

from emulator import Emulator
from tests.support.node_calls import call

ENV = "WAVESPEED_POLL_BUDGET_RPS"
RTT = 0.01  # a poll's reply comes back this long after it was sent (the fake network)
PLAN = PollPlan()

histories = st.lists(st.floats(min_value=0.05, max_value=600.0), max_size=60)
budgets = st.floats(min_value=MIN_BUDGET_RPS, max_value=MAX_BUDGET_RPS)


# ------------------------------------------------------------------ the budget setting (issue 17 case 8)


@pytest.mark.parametrize("raw", ["1e-300", "0.0001", "0.5", "inf", "-inf", "nan", "-3", "0", "1e300", "lots"])
def test_an_absurd_budget_is_refused_in_one_line_when_read(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    """Regression (issue 17 case 8): 1e-300 and 0.0001 were accepted, and a finished task was then
    never polled: the node ended "Timed out waiting". Now refused when read, before any wait."""
    monkeypatch.setenv(ENV, raw)
    with pytest.raises(E.ConfigError) as caught:
        budget_from_env()
    text = str(caught.value)
    assert "\n" not in text and ENV in text and repr(raw) in text and "from 1 to 10000" in text
    with pytest.raises(E.ConfigError):  # the poller reads it when it is made: refused there too
        Poller(lambda rid, deadline, cancel: Prediction.from_data({"id": rid, "status": "completed"}))


def test_an_absurd_budget_stops_generate_before_it_pays(
    pack: ModuleType, pack_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (issue 17 case 8): the task was submitted and paid, then never polled."""
    monkeypatch.setenv(ENV, "1e-300")
    with pytest.raises(Exception, match=ENV) as caught:
        asyncio.run(call("FluxKontextMaxGenerate", "a lighthouse", 7, 3.5, "1:1", False, unique_id="budget"))
    assert "\n" not in str(caught.value) and pack_env.submissions == 0


@pytest.mark.parametrize("raw, value", [("", 300.0), ("1", 1.0), ("50", 50.0), (" 10000 ", 10000.0)])
def test_a_sane_budget_is_taken(monkeypatch: pytest.MonkeyPatch, raw: str, value: float) -> None:
    monkeypatch.setenv(ENV, raw)
    assert budget_from_env() == value


@pytest.mark.parametrize("value", [1e-300, 0.0001, math.inf, math.nan, -1.0, 1e9])
def test_an_absurd_budget_in_code_is_refused(value: float) -> None:
    with pytest.raises(ValueError, match="budget_rps must be from 1 to 10000"):
        PollBook(0.0, budget_rps=value)


# ------------------------------------------------------------------ the plan alone

GAP = PLAN.gap_s


def naive_checks(length_s: float) -> int:
    """Checks of a poller that looks at once and then every 2 s, for a task of ``length_s``: a task
    of any length above 0 is still running at its first look, so it is looked at again."""
    return max(1, math.ceil(length_s / GAP - 1e-12)) + 1 if length_s > 0 else 1


def checks_of(schedule: Schedule, length_s: float, rtt_s: float = 0.0) -> list[tuple[float, float]]:
    """(sent, reply) of every check of a task that ends at ``length_s`` (seconds since its start),
    each reply ``rtt_s`` after its check, the next check planned when the reply is in."""
    out: list[tuple[float, float]] = []
    sent = schedule.next_offset(0.0, None)
    while True:
        out.append((sent, sent + rtt_s))
        if sent >= length_s or len(out) > 10_000:
            return out
        sent = schedule.next_offset(sent + rtt_s, sent + rtt_s)


@settings(max_examples=60, deadline=None)
@given(
    history=histories,
    length=st.floats(min_value=0.0, max_value=900.0),
    rtt=st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=0.9)),
)
@example(history=[], length=6.0, rtt=0.0)  # no history: the prior plans it
@example(history=[0.2] * 40, length=2.1, rtt=0.0)  # a short model's task that runs long
@example(history=[30.0] * 40, length=31.0, rtt=0.3)
@example(history=[], length=1.37e-214, rtt=0.0)  # found by Hypothesis: the 2 s poller's count was 1, not 2
def test_any_plan_keeps_the_pace_and_never_checks_more_than_a_2s_poller(
    history: list[float], length: float, rtt: float
) -> None:
    """For any inference-time history and any task length: no check starts less than 2 s after the
    previous one's reply; no more checks than a poller that looks at once and then every 2 s; the
    first within a second; while the task may still end, no gap wider than the max gap; once it is
    long, gaps that grow."""
    schedule = PLAN.schedule(history)
    checks = checks_of(schedule, length, rtt)
    assert checks[0][0] >= 0.0 and checks[-1][0] >= length
    assert all(b[0] - a[1] >= GAP - 1e-9 for a, b in zip(checks, checks[1:], strict=False))
    if rtt == 0.0:
        assert len(checks) <= naive_checks(length)
    gaps = [(a[1], b[0] - a[1]) for a, b in zip(checks, checks[1:], strict=False)]
    assert checks[0][0] <= PLAN.first_look_s + 1e-9
    for at, gap in gaps:
        if at < schedule.long_from_s - PLAN.max_gap(at):
            assert gap <= PLAN.max_gap(at) + rtt + 1e-9
    tail = [gap for at, gap in gaps if at >= schedule.long_from_s + PLAN.max_gap(schedule.long_from_s)]
    assert all(b >= a - 1e-9 for a, b in zip(tail, tail[1:], strict=False))
    assert all(gap <= PLAN.tail_max_gap_s + 1e-9 for gap in tail)


def draw_uniform(lo: float, hi: float) -> Callable[[random.Random], float]:
    return lambda rng: rng.uniform(lo, hi)


@pytest.mark.parametrize(
    "draw",
    [draw_uniform(3.4, 4.6), draw_uniform(8.5, 11.5), draw_uniform(25.5, 34.5), draw_uniform(2.0, 15.0)],
    ids=["4s+-15%", "10s+-15%", "30s+-15%", "uniform 2-15s"],
)
def test_learned_times_add_no_more_waiting_than_a_2s_poller_for_fewer_checks(
    draw: Callable[[random.Random], float],
) -> None:
    """40 past times of a model place the checks: on 2000 more of its tasks the mean time added
    (first check at or after the end, minus the end) is no worse than a 2 s poller's, and every task
    gets at most as many checks, fewer on average."""
    rng = random.Random(5)
    schedule = PLAN.schedule([draw(rng) for _ in range(40)])
    ours_added, naive_added, ours_n, naive_n = [], [], [], []
    for _ in range(2000):
        length = draw(rng)
        checks = checks_of(schedule, length)
        ours_added.append(checks[-1][0] - length)
        ours_n.append(len(checks))
        naive_n.append(naive_checks(length))
        naive_added.append((naive_n[-1] - 1) * GAP - length)
    assert all(a <= b for a, b in zip(ours_n, naive_n, strict=True))
    assert sum(ours_added) / 2000 <= sum(naive_added) / 2000 + 0.03
    assert sum(ours_n) < sum(naive_n)


def test_no_check_before_completion_is_likely_and_one_every_2s_where_it_is() -> None:
    schedule = PLAN.schedule([9.0 + 0.05 * i for i in range(40)])  # 9..11 s
    before = [t for t in schedule.offsets if t < 8.0]
    inside = [t for t in schedule.offsets if 8.5 <= t <= 12.0]
    # Before the window only the first look (an early failure) and the one the max gap asks for;
    # inside, every 2 s.
    assert before[0] <= PLAN.first_look_s + 1e-9 and len(before) == 2
    gaps = [b - a for a, b in zip(inside, inside[1:], strict=False)]
    assert inside and all(g == pytest.approx(GAP, abs=0.05) for g in gaps)


def test_without_history_the_prior_plans_a_check_every_2s_through_its_likely_times() -> None:
    schedule = PLAN.schedule([])
    likely = [t for t in schedule.offsets if 2.0 <= t <= 20.0]
    gaps = [b - a for a, b in zip(likely, likely[1:], strict=False)]
    assert len(likely) >= 8 and all(GAP - 1e-9 <= g <= GAP + 0.1 for g in gaps)


def test_a_task_longer_than_every_past_time_is_looked_at_more_and_more_slowly() -> None:
    """WaveSpeed: for long tasks, an increasing interval. Past 99 % of the learned times the gap
    after a check at age t is a tenth of t (2 s to 30 s)."""
    schedule = PLAN.schedule([2.0 + 0.1 * i for i in range(40)])  # 2.0 .. 5.9 s
    checks = [sent for sent, _ in checks_of(schedule, 900.0)]
    tail = [(a, b - a) for a, b in zip(checks, checks[1:], strict=False) if a > schedule.long_from_s + 5.0]
    share, top = PLAN.tail_share, PLAN.tail_max_gap_s
    assert tail and all(gap == pytest.approx(min(top, max(GAP, share * at))) for at, gap in tail)
    assert tail[-1][1] == top and len(checks) < 100  # a 2 s poller: 451


# ------------------------------------------------------------------ the poller's decisions, fake clock


@dataclass
class FakeTask:
    join_at: float
    queue_s: float
    inference_s: float
    timeout_s: float
    fresh: bool  # Poll Result after Generate (age known, submit reply in hand) or a pasted id

    @property
    def finish_at(self) -> float:
        return self.join_at + self.queue_s + self.inference_s

    def status(self, t: float) -> str:
        if t < self.join_at + self.queue_s:
            return "created"
        return "completed" if t >= self.finish_at else "processing"


tasks_strategy = st.lists(
    st.builds(
        FakeTask,
        join_at=st.floats(min_value=0.0, max_value=10.0),
        queue_s=st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=5.0)),
        inference_s=st.floats(min_value=0.05, max_value=30.0),
        timeout_s=st.floats(min_value=0.05, max_value=40.0),
        fresh=st.booleans(),
    ),
    min_size=1,
    max_size=12,
)


@dataclass
class Outcome:
    sent: list[float]  # every poll's send time, all tasks
    polls: dict[int, list[float]]
    seen_done: dict[int, float]  # task -> when its completed reply came in
    timed_out: set[int]


def simulate(tasks: list[FakeTask], budget: float, history: list[float]) -> Outcome:
    """Run PollBook against fake tasks on a fake clock: the same calls the Poller's threads make."""
    book = PollBook(0.0, budget_rps=budget, history=lambda model: history)
    out = Outcome([], {i: [] for i in range(len(tasks))}, {}, set())
    entries: dict[int, object] = {}
    deadlines: dict[int, float] = {}
    replies: list[tuple[float, int, str]] = []  # (arrives at, task, status)
    joins = sorted(range(len(tasks)), key=lambda i: tasks[i].join_at)
    now = 0.0
    for _ in range(200_000):
        while joins and tasks[joins[0]].join_at <= now:
            i = joins.pop(0)
            t = tasks[i]
            first = Prediction.from_data({"id": f"t{i}", "status": "created"}) if t.fresh else None
            deadlines[i] = now + t.timeout_s
            entries[i] = book.join(f"t{i}", "m", now, deadlines[i], first, 0.0 if t.fresh else None)
        while replies and replies[0][0] <= now:
            _, i, status = heapq.heappop(replies)
            if i in entries:
                data = {"id": f"t{i}", "status": status}
                book.on_reply(entries[i], Prediction.from_data(data), now)  # type: ignore[arg-type]
                if status == "completed":
                    out.seen_done[i] = now
        for i in list(entries):
            if i in out.seen_done or now >= deadlines[i]:
                if i not in out.seen_done:
                    out.timed_out.add(i)
                book.leave(entries.pop(i), deadlines[i])  # type: ignore[arg-type]
        if not entries and not joins and not replies:
            return out
        by_id = {f"t{i}": i for i in entries}
        for entry in book.take_due(now):
            i = by_id[entry.request_id]
            out.sent.append(now)
            out.polls[i].append(now)
            heapq.heappush(replies, (now + RTT, i, tasks[i].status(now + RTT / 2)))
        wake = [now + book.wake_in(now)]
        wake += [tasks[joins[0]].join_at] if joins else []
        wake += [replies[0][0]] if replies else []
        wake += [deadlines[i] for i in entries]
        now = max(now + 1e-6, min(wake))
    raise AssertionError("the simulation did not end")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tasks=tasks_strategy, budget=budgets, history=histories)
@example(  # issue 17 case 8: at the smallest budget a finished task is still seen before its deadline
    tasks=[FakeTask(0.0, 0.0, 2.0, 30.0, True)], budget=1.0, history=[]
)
def test_the_budget_is_never_exceeded(tasks: list[FakeTask], budget: float, history: list[float]) -> None:
    sent = simulate(tasks, budget, history).sent
    # Conformance to a bucket of `budget` a second holding `capacity`: then any window of length L
    # holds at most capacity + budget x L polls.
    capacity = max(1.0, budget)
    tokens, last = capacity, 0.0
    for t in sent:
        tokens = min(capacity, tokens + budget * (t - last)) - 1.0
        last = t
        assert tokens >= -1e-6


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tasks=tasks_strategy, budget=budgets, history=histories)
@example(tasks=[FakeTask(0.0, 0.0, 2.0, 30.0, True)], budget=1.0, history=[])
@example(tasks=[FakeTask(0.0, 0.0, 0.05, 0.05, True)], budget=1.0, history=[])  # shorter than the lead
def test_no_task_is_left_unpolled_past_its_deadline(
    tasks: list[FakeTask], budget: float, history: list[float]
) -> None:
    """While the budget can serve every task's last look (twice tasks / budget within final_lead_s),
    every task still running at its deadline was looked at in its final window, and one that
    finished before that window is reported done, not "Timed out waiting". With less budget nobody
    starves: no check comes later than the widest gap the plan allows (plus a gap, when it is moved
    to be the last look) and (tasks / budget) of waiting for the budget."""
    out = simulate(tasks, budget, history)
    n = len(tasks)
    widest = max(PLAN.max_gap(80.0), PLAN.tail_share * 80.0, PLAN.queued_max_s)  # tasks end by 70 s
    starve = widest + PLAN.gap_s + (n + 1) / budget + RTT + 0.01
    for i, task in enumerate(tasks):
        deadline = task.join_at + task.timeout_s
        end = out.seen_done.get(i, deadline)
        marks = [task.join_at, *out.polls[i]]
        assert all(b - a <= starve for a, b in zip(marks, marks[1:], strict=False))
        assert end - marks[-1] <= starve + RTT
        # The pace: a check starts no sooner than 2 s after the previous one's reply.
        assert all(
            b - a >= PLAN.gap_s + RTT - 1e-9 for a, b in zip(out.polls[i], out.polls[i][1:], strict=False)
        )
    assume(2 * (n + 1) / budget + 2 * RTT <= PLAN.final_lead_s)
    for i, task in enumerate(tasks):
        deadline = task.join_at + task.timeout_s
        last_look = max(task.join_at, deadline - PLAN.final_lead_s)
        if i in out.timed_out:
            assert any(last_look - 1e-9 <= t < deadline for t in out.polls[i]) or task.timeout_s < RTT
        if task.finish_at < last_look:
            assert i in out.seen_done


def test_a_token_bucket_refuses_more_than_it_holds() -> None:
    bucket = TokenBucket(2.0, 0.0)
    assert bucket.take(0.0, 5) == 2 and bucket.take(0.0, 1) == 0
    assert bucket.take(0.5, 5) == 1 and bucket.take(-10.0, 5) == 0  # a clock going back adds nothing


def test_the_plan_follows_new_times_even_with_a_full_history() -> None:
    """The history keeps the last 200 times; a plan built on a full history is still rebuilt once
    new times are a tenth of it (a model that got slower is followed)."""
    book = PollBook(0.0, budget_rps=50.0, history=lambda model: [2.0] * 200)
    old = book.schedule("m")
    for _ in range(19):
        book.record("m", 10.0)
    assert book.schedule("m") is old  # 19 new of 200: not yet
    book.record("m", 10.0)
    assert book.schedule("m").mean_s > old.mean_s
