"""The emulator's account tiers (emulator/behaviour/tiers.py): the per-minute window, the concurrency limit
and random inference times, over real loopback sockets."""

from __future__ import annotations

import time

import pytest
import requests

from emulator import TIERS, Emulator, Tier
from emulator.__main__ import _parser

T2I = "wavespeed-ai/flux-kontext-max/text-to-image"
KEY = "limits-key-0123456789"


def _post(emu: Emulator, prompt: str = "a cat") -> requests.Response:
    return requests.post(
        f"{emu.base_url}/api/v3/{T2I}",
        json={"prompt": prompt},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=10,
    )


def _status(emu: Emulator, request_id: str) -> str:
    r = requests.get(
        f"{emu.base_url}/api/v3/predictions/{request_id}/result",
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=10,
    )
    status: str = r.json()["data"]["status"]
    return status


def test_tiers_follow_the_documented_account_levels() -> None:
    assert TIERS["bronze"] == Tier("bronze", 2, 2)
    assert TIERS["silver"] == Tier("silver", 500, 300)
    assert TIERS["gold"] == Tier("gold", 3000, 3000)
    assert TIERS["none"].per_minute is None and TIERS["none"].concurrency is None


def test_bronze_refuses_the_third_submit_of_a_minute_with_429_and_no_task() -> None:
    with Emulator(api_keys=(KEY,), inference_s=0.05, tier="bronze", minute_s=600) as emu:
        assert [_post(emu).status_code for _ in range(2)] == [200, 200]
        refused = _post(emu)
        assert refused.status_code == 429
        body = refused.json()
        assert body["code"] == 429 and body["data"] == {"error": body["message"]}
        assert "per minute" in body["message"]
        assert "Retry-After" not in refused.headers  # the docs document none
        assert emu.submissions == 2 and emu.rate_limited == 1
        assert emu.balance == pytest.approx(100.0 - 2 * 0.08)  # a refused submit costs nothing


def test_the_window_resets_after_minute_s() -> None:
    with Emulator(api_keys=(KEY,), inference_s=0.05, tier="bronze", minute_s=0.6) as emu:
        statuses = [_post(emu).status_code for _ in range(3)]
        time.sleep(0.7)  # a full window: whatever phase we were in, a new one has begun
        statuses.append(_post(emu).status_code)
        assert statuses[:2] == [200, 200] and statuses[3] == 200
        assert emu.submissions == 3 - statuses[:3].count(429) + 1


def test_retry_after_is_sent_only_when_asked() -> None:
    with Emulator(api_keys=(KEY,), tier="bronze", minute_s=30, retry_after_on_429=True) as emu:
        _post(emu), _post(emu)
        refused = _post(emu)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 30


def test_tasks_over_the_concurrency_limit_stay_created_until_a_slot_frees() -> None:
    with Emulator(api_keys=(KEY,), inference_s=30.0, tier=Tier("t", 10, 2), minute_s=600) as emu:
        ids = [_post(emu, f"p{i}").json()["data"]["id"] for i in range(3)]
        first, third = emu.task(ids[0]), emu.task(ids[2])
        # The third waits for the first slot to free: it is `created` for the first one's inference.
        assert third.queue_s == pytest.approx(first.submitted_mono + 30.0 - third.submitted_mono)
        assert third.phase(third.submitted_mono + third.queue_s - 0.01) == "created"
        assert third.phase(third.submitted_mono + third.queue_s + 0.01) == "processing"
        assert [_status(emu, i) for i in ids] == ["processing", "processing", "created"]


def test_no_tier_means_no_limits() -> None:
    with Emulator(api_keys=(KEY,), inference_s=30.0) as emu:
        ids = [_post(emu, f"p{i}").json()["data"]["id"] for i in range(5)]
        assert all(emu.task(i).queue_s == 0.0 for i in ids)


def test_inference_times_are_drawn_continuously_within_the_range() -> None:
    with Emulator(api_keys=(KEY,), inference_s=2.0, inference_max_s=4.0, seed=7) as emu:
        drawn = [emu.task(_post(emu).json()["data"]["id"]).inference_s for _ in range(8)]
    assert all(2.0 <= d <= 4.0 for d in drawn)
    assert len({round(d, 6) for d in drawn}) == 8  # not whole seconds, not one value
    with Emulator(api_keys=(KEY,), inference_s=2.0, inference_max_s=4.0, seed=7) as again:
        assert [again.task(_post(again).json()["data"]["id"]).inference_s for _ in range(8)] == drawn


def test_tier_and_minute_are_set_by_configure_and_the_control_endpoint() -> None:
    with Emulator(api_keys=(KEY,), inference_s=0.05) as emu:
        r = requests.post(
            f"{emu.base_url}/_emulator/config", json={"tier": "bronze", "minute_s": 600}, timeout=5
        )
        assert r.json() == {"ok": True}
        assert [_post(emu).status_code for _ in range(3)] == [200, 200, 429]
        assert emu.stats()["tier"] == "bronze" and emu.stats()["rate_limited"] == 1
        with pytest.raises(ValueError, match="unknown tier"):
            emu.configure(tier="platinum")
        emu.configure(tier="none")
        assert _post(emu).status_code == 200


def test_command_line_takes_tier_and_minute() -> None:
    args = _parser().parse_args(["--tier", "bronze", "--minute-s", "10", "--inference-max-s", "5"])
    assert (args.tier, args.minute_s, args.inference_max_s) == ("bronze", 10.0, 5.0)


def test_the_window_starts_with_the_first_submit() -> None:
    """A burst of submits shares one window however late after configure() it comes (the Bronze e2e
    test relies on it: with windows aligned to configure() a slow start could split the burst)."""
    from emulator.behaviour.tiers import Account, tier_named

    account = Account(tier_named("bronze"), 1.0)
    assert account.resets_in(50.0) == 1.0  # nothing submitted yet: a whole minute ahead
    assert account.admit(100.4) and account.admit(100.45)
    assert not account.admit(101.3)  # still the first submit's minute
    assert account.resets_in(101.3) == pytest.approx(0.1)
    assert account.admit(101.41)  # a new minute, one minute after the first submit
