"""The shared poller (wavespeed/limits/poller.py) against the emulator: polls where completion is likely,
one request budget for every task in flight, queued tasks read as queued, the wait contract."""

from __future__ import annotations

import contextlib
import math
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from wavespeed_kontext_pack.wavespeed.api.kontext_request import KontextRequest
from wavespeed_kontext_pack.wavespeed.api.models import model_for
from wavespeed_kontext_pack.wavespeed.api.reply_types import Prediction
from wavespeed_kontext_pack.wavespeed.core import errors as E
from wavespeed_kontext_pack.wavespeed.limits.poller import (
    Poller,
    PollPlan,
    account_poller,
    budget_from_env,
    poller_for,
    reset_pollers,
    submit_and_wait,
    wait_for,
)
from wavespeed_kontext_pack.wavespeed.net.client import WaveSpeedClient

from emulator import Emulator, Tier
from tests.support.threads import run_in_threads

MODEL_TEXT_TO_IMAGE = model_for("t2i").id

KEY = "poller-key-0123456789"


@contextlib.contextmanager
def _polling(emu: Emulator, **kw: Any) -> Iterator[tuple[WaveSpeedClient, Poller]]:
    """A client on ``emu`` and a Poller reading /result through it, closed after the block."""
    client = WaveSpeedClient(KEY, emu.base_url)
    poller = Poller(
        lambda rid, deadline, cancel: client.get_result(rid, deadline=deadline, cancel=cancel), **kw
    )
    try:
        yield client, poller
    finally:
        poller.close()


def _history(lo: float, hi: float, n: int = 40) -> list[float]:
    rng = random.Random(3)
    return sorted(rng.uniform(lo, hi) for _ in range(n))


def _result_polls(emu: Emulator, request_id: str) -> list[float]:
    return [r.t for r in emu.requests if r.route == "result" and request_id in r.path]


def _run_all(poller: Poller, client: WaveSpeedClient, n: int) -> tuple[list[Prediction], list[Prediction]]:
    firsts = [client.submit(KontextRequest(prompt=f"p{i}", seed=i)) for i in range(n)]
    done, errors = run_in_threads(
        lambda i: poller.wait(firsts[i].id, model=MODEL_TEXT_TO_IMAGE, timeout_s=60, first=firsts[i]),
        n,
        join_s=90,
    )
    assert errors == [] and len(done) == n
    return firsts, done


def test_with_history_no_poll_is_spent_before_completion_is_likely() -> None:
    history = _history(0.8, 0.95)
    with Emulator(api_keys=(KEY,), inference_s=0.8, inference_max_s=0.95, seed=1) as emu:
        with _polling(emu, history=lambda model: history) as (client, poller):
            firsts, done = _run_all(poller, client, 6)
        assert all(p.is_completed for p in done)
        schedule = PollPlan().schedule(history)
        assert schedule.offsets[0] > 0.9  # nothing likely before ~0.8 s: the first look waits
        for first in firsts:
            task = emu.task(first.id)
            polls = _result_polls(emu, first.id)
            submitted_wall = time.time() - (time.monotonic() - task.submitted_mono)
            # The first look is the plan's first, not one during the first second.
            assert min(polls) - submitted_wall >= schedule.offsets[0] - 0.05
            assert len(polls) <= sum(1 for t in schedule.offsets if t <= 0.95 + 0.5)


def test_without_history_the_prior_plans_a_few_polls() -> None:
    with Emulator(api_keys=(KEY,), inference_s=0.3) as emu:
        with _polling(emu) as (client, poller):
            first = client.submit(KontextRequest(prompt="x"))
            assert poller.wait(first.id, timeout_s=30, first=first).is_completed
        assert 1 <= len(_result_polls(emu, first.id)) <= 6


def test_one_budget_bounds_the_requests_of_every_wait() -> None:
    with Emulator(api_keys=(KEY,), inference_s=0.5, inference_max_s=1.5, seed=2) as emu:
        with _polling(emu, budget_rps=5.0) as (client, poller):
            _, done = _run_all(poller, client, 20)
        assert all(p.is_completed for p in done)
        times = sorted(r.t for r in emu.requests if r.route == "result")
        # A token bucket of 5/s holding at most 5: no second ever sees more than 10 polls.
        busiest = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
        assert busiest <= 10


def test_a_task_queued_at_wavespeed_reads_created_then_completes() -> None:
    # b waits in `created` while a runs (3 s): long enough for a second look 2 s after the first.
    with Emulator(api_keys=(KEY,), inference_s=3.0, tier=Tier("one", 100, 1), minute_s=600) as emu:
        seen: list[str] = []
        with _polling(emu) as (client, poller):
            a = client.submit(KontextRequest(prompt="a"))
            b = client.submit(KontextRequest(prompt="b"))
            threading.Thread(target=poller.wait, args=(a.id,), kwargs={"timeout_s": 30}).start()
            done = poller.wait(b.id, timeout_s=30, progress=lambda p, s: seen.append(p.status))
        assert done.is_completed
        assert "created" in seen[1:] and seen[-1] == "completed"  # polled while queued, not "processing"


def test_the_wait_contract_failed_unknown_cancel_timeout() -> None:
    with Emulator(api_keys=(KEY,), inference_s=0.1) as emu, _polling(emu) as (client, poller):
        emu.next_tasks(fail="boom", fail_code=1403)
        failed = client.submit(KontextRequest(prompt="f"))
        with pytest.raises(E.TaskFailedError, match="boom"):
            poller.wait(failed.id, timeout_s=30)
        with pytest.raises(E.NotFoundError):
            poller.wait("0" * 32, timeout_s=30)
        emu.next_tasks(times=2, never_finish=True)
        hung = client.submit(KontextRequest(prompt="h"))
        with pytest.raises(E.WaitTimeoutError, match=hung.id):
            poller.wait(hung.id, timeout_s=0.5)
        flag = threading.Event()
        threading.Timer(0.3, flag.set).start()
        with pytest.raises(E.CancelledError, match=hung.id):
            poller.wait(hung.id, timeout_s=30, cancel=flag.is_set)
        assert poller.in_flight() == 0  # nobody waits: nothing is polled any more


def test_a_terminal_reply_in_hand_costs_no_request() -> None:
    with Emulator(api_keys=(KEY,), inference_s=0.05) as emu:
        with _polling(emu) as (client, poller):
            first = client.submit(KontextRequest(prompt="s", enable_sync_mode=True))
            assert poller.wait(first.id, first=first) is first
        assert _result_polls(emu, first.id) == []


def test_two_waiters_of_one_task_share_its_polls() -> None:
    with Emulator(api_keys=(KEY,), inference_s=0.8) as emu:
        with _polling(emu) as (client, poller):
            first = client.submit(KontextRequest(prompt="shared"))
            other: list[Prediction] = []
            t = threading.Thread(target=lambda: other.append(poller.wait(first.id, timeout_s=30)))
            t.start()
            mine = poller.wait(first.id, timeout_s=30)
            t.join(30)
        assert mine.is_completed and other[0].id == mine.id
        assert len(_result_polls(emu, first.id)) == poller.requests


def test_budget_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WAVESPEED_POLL_BUDGET_RPS", raising=False)
    assert budget_from_env() == 300.0
    monkeypatch.setenv("WAVESPEED_POLL_BUDGET_RPS", "50")
    assert budget_from_env() == 50.0
    monkeypatch.setenv("WAVESPEED_POLL_BUDGET_RPS", "0")
    with pytest.raises(E.ConfigError, match="WAVESPEED_POLL_BUDGET_RPS"):
        budget_from_env()


def test_one_poller_per_account() -> None:
    reset_pollers()
    try:
        made: list[Poller] = []

        def make() -> Poller:
            made.append(
                Poller(lambda rid, dl, cancel: Prediction.from_data({"id": rid, "status": "completed"}))
            )
            return made[-1]

        assert poller_for("a", make) is poller_for("a", make) and len(made) == 1
    finally:
        reset_pollers()


def test_a_fresh_task_without_a_reply_in_hand_is_not_polled_at_once() -> None:
    history = _history(0.8, 0.95)
    with Emulator(api_keys=(KEY,), inference_s=0.9) as emu:
        with _polling(emu, history=lambda model: history) as (client, poller):
            first = client.submit(KontextRequest(prompt="fresh"))
            joined = time.time()
            assert poller.wait(first.id, model=MODEL_TEXT_TO_IMAGE, timeout_s=30, age_s=0.0).is_completed
        # Poll Result after Generate: the task's age is known, so the plan applies from the start.
        assert min(_result_polls(emu, first.id)) - joined >= PollPlan().schedule(history).offsets[0] - 0.05


def test_the_one_liners_wait_through_the_accounts_poller() -> None:
    """One polling path: the client has no wait loop of its own; wait_for / submit_and_wait poll
    through the account's poller (the one the nodes get), and a final reply in hand costs no poll."""
    with Emulator(api_keys=(KEY,), inference_s=0.2) as emu, WaveSpeedClient(KEY, emu.base_url) as client:
        assert not hasattr(client, "wait") and not hasattr(client, "run")
        poller = account_poller(client)
        done = submit_and_wait(client, KontextRequest(prompt="one way"), timeout_s=30)
        assert done.is_completed and poller.requests == len(_result_polls(emu, done.id)) >= 1
        again = wait_for(client, done.id, timeout_s=30)
        assert again.id == done.id and poller.requests == len(_result_polls(emu, done.id))
        sync = submit_and_wait(client, KontextRequest(prompt="in hand", enable_sync_mode=True), timeout_s=30)
        assert sync.is_completed and _result_polls(emu, sync.id) == []


def test_the_poller_keeps_wavespeeds_pace_on_a_throttling_server() -> None:
    """Tasks of 3-6 s with no history (the prior plans them) on an emulator that answers 429 to a
    check closer than 2 s: none is refused, every task's checks reach it at least 2 s apart, and no
    task is checked more often than a poller that looks at once and then every 2 s would."""
    with Emulator(api_keys=(KEY,), inference_s=3.0, inference_max_s=6.0, seed=4) as emu:
        assert emu.poll_gap_s == 2.0  # the default: the published pace
        with _polling(emu) as (client, poller):
            firsts, done = _run_all(poller, client, 4)
        assert all(p.is_completed for p in done) and emu.throttled_checks == 0
        for first in firsts:
            checks = _result_polls(emu, first.id)
            assert all(b - a >= 2.0 for a, b in zip(checks, checks[1:], strict=False)), checks
            inference = emu.task(first.id).inference_s
            assert len(checks) <= math.ceil(inference / 2.0) + 1
