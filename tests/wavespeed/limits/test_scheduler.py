"""The submit scheduler (wavespeed/limits/scheduler.py) against an emulated account with limits: a 429 is
"not accepted", so it waits and submits again; the limit is learned so later submits queue here."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from wavespeed_kontext_pack.wavespeed.api.kontext_request import KontextRequest
from wavespeed_kontext_pack.wavespeed.api.reply_types import Prediction
from wavespeed_kontext_pack.wavespeed.core import errors as E
from wavespeed_kontext_pack.wavespeed.limits.scheduler import (
    SubmitScheduler,
    limit_from_env,
    reset_schedulers,
    scheduler_for,
    window_from_env,
)
from wavespeed_kontext_pack.wavespeed.net.client import WaveSpeedClient

from emulator import Emulator
from tests.support.clients import fast_client
from tests.support.threads import run_in_threads

KEY = "sched-key-0123456789"


def _client(emu: Emulator) -> WaveSpeedClient:
    # One attempt: a 429 comes straight back as RateLimitedError, as submit(retry_rate_limit=False) will.
    return fast_client(emu.base_url, KEY, attempts=1)


def _submit_all(
    sched: SubmitScheduler, client: WaveSpeedClient, n: int, texts: list[str]
) -> tuple[list[Prediction], list[BaseException]]:
    def one(i: int) -> Prediction:
        request = KontextRequest(prompt=f"cat {i}", seed=i)
        return sched.submit(
            lambda: client.submit(request), deadline=time.monotonic() + 60, status=texts.append
        )

    return run_in_threads(one, n)


def test_bronze_batch_completes_every_submit_once_and_429s_are_only_waiting_text() -> None:
    with Emulator(api_keys=(KEY,), inference_s=0.05, tier="bronze", minute_s=1.5) as emu:
        sched = SubmitScheduler(window_s=1.5)
        texts: list[str] = []
        done, errors = _submit_all(sched, _client(emu), 6, texts)
        assert errors == []
        assert len({p.id for p in done}) == 6 and emu.submissions == 6  # one accepted submit per image
        assert sched.limit == 2  # learned from the 429s
        assert any(t.startswith("waiting for WaveSpeed's rate limit, resets in ~") for t in texts)
        # Once learned, later submits queue here: no 429 after the first window's.
        statuses = [r.status for r in emu.requests if r.route == "submit"]
        last_429 = max(i for i, s in enumerate(statuses) if s == 429)
        assert statuses[: last_429 + 1].count(200) <= 2


def test_a_configured_limit_never_hits_a_429() -> None:
    with Emulator(api_keys=(KEY,), inference_s=0.05, tier="bronze", minute_s=1.0) as emu:
        sched = SubmitScheduler(limit_per_window=2, window_s=1.0)
        done, errors = _submit_all(sched, _client(emu), 4, [])
        assert errors == [] and len(done) == 4
        assert emu.rate_limited == 0


def test_a_wait_past_the_deadline_is_a_typed_error_and_sends_nothing() -> None:
    with Emulator(api_keys=(KEY,), inference_s=0.05, tier="bronze", minute_s=600) as emu:
        client = _client(emu)
        sched = SubmitScheduler(limit_per_window=2, window_s=600)
        for i in range(2):
            sched.submit(lambda i=i: client.submit(KontextRequest(prompt=f"dog {i}")))
        with pytest.raises(E.RateLimitedError, match="nothing was sent or charged"):
            sched.submit(lambda: client.submit(KontextRequest(prompt="dog 3")), deadline=time.monotonic() + 5)
        assert emu.submissions == 2 and len([r for r in emu.requests if r.route == "submit"]) == 2


def test_cancel_stops_a_waiting_submit() -> None:
    with Emulator(api_keys=(KEY,), inference_s=0.05, tier="bronze", minute_s=600) as emu:
        client = _client(emu)
        sched = SubmitScheduler(window_s=600)
        for i in range(2):
            sched.submit(lambda i=i: client.submit(KontextRequest(prompt=f"fox {i}")))
        flag = threading.Event()
        threading.Timer(0.3, flag.set).start()
        with pytest.raises(E.CancelledError, match="nothing was sent"):
            # The third is refused once (learning the limit), then waits until Cancel.
            sched.submit(lambda: client.submit(KontextRequest(prompt="fox 3")), cancel=flag.is_set)
        assert emu.submissions == 2


def test_other_errors_pass_through_unretried_and_free_the_slot() -> None:
    with Emulator(api_keys=(KEY,), inference_s=0.05) as emu:
        client = _client(emu)
        sched = SubmitScheduler(limit_per_window=1, window_s=600)
        emu.inject("submit", "status", status=500)
        with pytest.raises(E.SubmitUncertainError):
            sched.submit(lambda: client.submit(KontextRequest(prompt="owl")))
        assert len([r for r in emu.requests if r.route == "submit"]) == 1
        sched.submit(lambda: client.submit(KontextRequest(prompt="owl")), deadline=time.monotonic() + 5)
        assert emu.submissions == 1


class _Refusing:
    """A submit callable that is refused `times` times with a given Retry-After, then accepted."""

    def __init__(self, times: int, retry_after_s: float | None) -> None:
        self.times, self.retry_after_s = times, retry_after_s
        self.calls: list[float] = []

    def __call__(self) -> str:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.times:
            raise E.RateLimitedError("429", status=429, retry_after_s=self.retry_after_s)
        return "accepted"


def test_retry_after_from_the_server_wins_over_the_minute() -> None:
    sched = SubmitScheduler(window_s=600, jitter_s=0.0)
    fn = _Refusing(1, retry_after_s=0.2)
    assert sched.submit(fn, deadline=time.monotonic() + 30) == "accepted"
    assert len(fn.calls) == 2


def test_without_knowledge_a_429_waits_for_the_window_inside_the_deadline() -> None:
    sched = SubmitScheduler(window_s=600, jitter_s=0.0)
    fn = _Refusing(1, retry_after_s=None)
    with pytest.raises(E.RateLimitedError, match="before its deadline"):
        sched.submit(fn, deadline=time.monotonic() + 2)
    assert len(fn.calls) == 1  # it did not hammer the API until the deadline


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WAVESPEED_RATE_LIMIT_PER_MIN", raising=False)
    monkeypatch.delenv("WAVESPEED_ACCOUNT_TIER", raising=False)
    monkeypatch.delenv("WAVESPEED_RATE_WINDOW_S", raising=False)
    assert limit_from_env() is None and window_from_env() == 60.0
    monkeypatch.setenv("WAVESPEED_ACCOUNT_TIER", "Bronze")
    assert limit_from_env() == 2
    monkeypatch.setenv("WAVESPEED_RATE_LIMIT_PER_MIN", "7")
    assert limit_from_env() == 7
    monkeypatch.setenv("WAVESPEED_RATE_LIMIT_PER_MIN", "lots")
    with pytest.raises(E.ConfigError, match="WAVESPEED_RATE_LIMIT_PER_MIN"):
        limit_from_env()
    monkeypatch.delenv("WAVESPEED_RATE_LIMIT_PER_MIN")
    monkeypatch.setenv("WAVESPEED_ACCOUNT_TIER", "platinum")
    with pytest.raises(E.ConfigError, match="WAVESPEED_ACCOUNT_TIER"):
        limit_from_env()
    monkeypatch.setenv("WAVESPEED_RATE_WINDOW_S", "10")
    assert window_from_env() == 10.0


def test_one_scheduler_per_account(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAVESPEED_ACCOUNT_TIER", "silver")
    reset_schedulers()
    try:
        a: Callable[[str], SubmitScheduler] = scheduler_for
        assert a("acct-1") is a("acct-1") and a("acct-1") is not a("acct-2")
        assert a("acct-1").limit == 500
    finally:
        reset_schedulers()
