"""The poll plan and the poller's decisions (wavespeed/limits/poll_plan.py, PollBook in wavespeed/limits/poller.py),
driven by a fake clock: no sleeps, no timing. Properties tried by Hypothesis: any history, any
budget in the allowed range, any set of tasks."""

from __future__ import annotations

import asyncio
import heapq
import math
from dataclasses import dataclass
from types import ModuleType

import pytest
from hypothesis import HealthCheck, assume, example, given, settings, strategies as st
from wavespeed_kontext_pack.wavespeed.api.reply_types import Prediction
from wavespeed_kontext_pack.wavespeed.core import errors as E
from wavespeed_kontext_pack.wavespeed.limits.poll_plan import PollPlan, TokenBucket
from wavespeed_kontext_pack.wavespeed.limits.poller import (
    MAX_BUDGET_RPS,
    MIN_BUDGET_RPS,
    PollBook,
    Poller,
    budget_from_env,
)

from emulator import Emulator

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
    generate = pack.nodes.NODES["FluxKontextMaxGenerate"]()
    with pytest.raises(Exception, match=ENV) as caught:
        asyncio.run(generate.generate("a lighthouse", 7, 3.5, "1:1", False, unique_id="budget"))
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


@settings(max_examples=30, deadline=None)
@given(history=histories, rps=st.floats(min_value=0.5, max_value=5.0))
@example(history=[], rps=1.5)  # no history: the prior plans it (no fast fixed schedule)
@example(history=[0.05] * 10, rps=0.5)  # tasks too short for the budget: still polled
@example(history=[17.0], rps=0.5)  # Hypothesis found it: even one look per max gap cost over the budget
def test_a_schedule_has_bounded_gaps_and_meets_its_budget(history: list[float], rps: float) -> None:
    plan = PollPlan(per_task_rps=rps)
    schedule = plan.schedule(history)
    offsets = schedule.offsets
    assert offsets and offsets[0] <= plan.max_gap_s
    gaps = [b - a for a, b in zip(offsets, offsets[1:], strict=False)]
    assert all(plan.min_step_s - 1e-9 <= g <= plan.max_gap_s + 1e-9 for g in gaps)
    # Expected polls fit the budget: rps x expected inference - submit - download, at least min_polls
    # and at least the sparsest plan (one look per max gap), which is then the plan.
    nominal = max(plan.min_polls, 0.95 * rps * schedule.mean_s - 2)
    assert schedule.expected_polls <= schedule.budget_polls + 1e-6
    assert schedule.budget_polls >= nominal - 1e-9
    if schedule.expected_polls > nominal + 1e-6:  # only the sparsest plan may cost more than nominal
        assert (
            offsets[0] >= plan.max_gap_s - 1e-6 and min(gaps, default=plan.max_gap_s) >= plan.max_gap_s - 1e-6
        )
    # Whatever the elapsed time, the next poll is planned, later, and within the max gap.
    for elapsed in (0.0, offsets[0], offsets[-1], offsets[-1] + 100.0):
        nxt = schedule.next_offset(elapsed)
        assert elapsed + plan.min_step_s - 1e-9 <= nxt <= elapsed + plan.max_gap_s + 1e-9


def test_no_history_costs_about_what_a_known_model_costs() -> None:
    """The prior plans a new model's first tasks within the same per-task budget: no fallback to a
    fixed fast schedule that costs several times the requests (issue 21)."""
    new = PLAN.schedule([])
    known = PLAN.schedule([6.0] * 40)
    assert new.expected_polls <= new.budget_polls and new.budget_polls < 2 * known.budget_polls
    assert sum(1 for t in new.offsets if t <= 6.0) < 12  # the old fallback: 20 polls in 6 s


def test_the_plan_polls_densely_where_completion_is_likely() -> None:
    schedule = PLAN.schedule([9.0 + 0.05 * i for i in range(40)])  # 9..11 s
    before = [t for t in schedule.offsets if t < 8.0]
    inside = [t for t in schedule.offsets if 9.0 <= t <= 11.0]
    # A few looks before (the prior keeps a little mass there: early failures, a faster day), many
    # more per second inside the window.
    assert len(before) <= 5 and len(inside) / 2.0 >= 3 * len(before) / 8.0


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
    """While the budget can serve every task's last look (tasks / budget within final_lead_s), every
    task still running at its deadline was looked at in its final window, and one that finished
    before that window is reported done, not "Timed out waiting". With less budget nobody starves:
    no due poll waits more than (tasks / budget) beyond a max gap."""
    out = simulate(tasks, budget, history)
    n = len(tasks)
    starve = PLAN.max_gap_s + PLAN.queued_max_s + (n + 1) / budget + RTT + 0.01
    for i, task in enumerate(tasks):
        deadline = task.join_at + task.timeout_s
        end = out.seen_done.get(i, deadline)
        marks = [task.join_at, *out.polls[i]]
        assert all(b - a <= starve for a, b in zip(marks, marks[1:], strict=False))
        assert end - marks[-1] <= starve + RTT
    assume((n + 1) / budget + 2 * RTT <= PLAN.final_lead_s)
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


def test_a_task_longer_than_all_history_keeps_a_short_lag() -> None:
    """Issue 21: tasks longer than any before lost 0.6-0.9 s. Past the longest past time a task is
    looked at every 1 / (0.95 x 1.5) s, paying for those seconds at the per-second budget; one that
    already spent its budget waits until its seconds pay (never past the max gap)."""
    schedule = PLAN.schedule([2.0 + 0.1 * i for i in range(40)])  # 2.0 .. 5.9 s
    looks, t = [], 5.9
    for polls in range(10):  # one poll per 0.7 s of its life so far: its seconds pay for more
        t = schedule.next_offset(t, polls)
        looks.append(t)
    assert looks[0] - 5.9 <= schedule.tail_gap_s / 2 + 1e-9 and schedule.tail_gap_s <= 0.71
    assert all(b - a <= schedule.tail_gap_s + 1e-9 for a, b in zip(looks, looks[1:], strict=False))
    # 20 polls by 8 s: more than its seconds pay for, so the tail waits, but never past the max gap.
    assert schedule.latest_after(8.0, polls=20) == pytest.approx(min(8.0 + 4.0, 23 * schedule.tail_gap_s))
    assert schedule.latest_after(8.0, polls=8) == pytest.approx(8.0 + schedule.tail_gap_s, abs=0.36)


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
