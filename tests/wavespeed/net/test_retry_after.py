"""Issue 11, class 6: Retry-After garbage is ignored, negatives are 0, huge values never make a
call sleep past its deadline (or past RetryPolicy.max_retry_after_s without one), and a failed
submit that created no task comes out typed, so the session budget is given back."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from wavespeed_kontext_pack.wavespeed.api.kontext_request import KontextRequest
from wavespeed_kontext_pack.wavespeed.api.replies import MAX_RETRY_AFTER_S, retry_after_s
from wavespeed_kontext_pack.wavespeed.core import errors as E
from wavespeed_kontext_pack.wavespeed.limits.poller import wait_for
from wavespeed_kontext_pack.wavespeed.net.client import WaveSpeedClient

from emulator import Emulator
from tests.support.hostile_server import run_bounded

SLACK_S = 2.0


def bounded(fn: Callable[[], object], bound_s: float) -> object:
    return run_bounded(fn, bound_s, "the wait (still sleeping on Retry-After)")


@pytest.mark.parametrize(
    "value", ["soon", "Mon, 99 Foo 2026 99:99:99 GMT", "nan", "", "1" * 100, "Sun, 06 Nov"]
)
def test_garbage_retry_after_on_submit_is_ignored(
    value: str, emulator: Emulator, client: WaveSpeedClient
) -> None:
    emulator.inject("submit", "retry_after", message=value)
    prediction = client.submit(KontextRequest(prompt="garbage header"))
    assert prediction.id and emulator.submissions == 1


def test_negative_retry_after_means_now(emulator: Emulator, client: WaveSpeedClient) -> None:
    emulator.inject("submit", "retry_after", message="-30")
    assert client.submit(KontextRequest(prompt="negative")).id


@pytest.mark.parametrize("value", ["3600", "inf", "1e999", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_huge_retry_after_on_submit_raises_now_typed(
    value: str, emulator: Emulator, client: WaveSpeedClient
) -> None:
    emulator.inject("submit", "retry_after", message=value)
    outcome = bounded(lambda: client.submit(KontextRequest(prompt="huge wait")), SLACK_S)
    assert isinstance(outcome, E.RateLimitedError), outcome
    assert outcome.retry_after_s is not None and outcome.retry_after_s > 5.0
    assert "asked to wait" in str(outcome) and emulator.submissions == 0


def test_huge_retry_after_on_a_poll_never_sleeps_past_the_deadline(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    task = client.submit(KontextRequest(prompt="poll"))
    emulator.inject("result", "retry_after", message="inf")
    outcome = bounded(lambda: wait_for(client, task.id, timeout_s=1.0), 1.0 + SLACK_S)
    assert isinstance(outcome, E.RateLimitedError) and outcome.request_id == task.id


def test_submit_without_rate_limit_retry_raises_at_once(emulator: Emulator, client: WaveSpeedClient) -> None:
    emulator.inject("submit", "retry_after", message="2")
    with pytest.raises(E.RateLimitedError) as info:
        client.submit(KontextRequest(prompt="scheduler"), retry_rate_limit=False)
    assert info.value.retry_after_s == 2.0 and info.value.status == 429
    assert sum(r.route == "submit" for r in emulator.requests) == 1 and emulator.submissions == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        ("0.5", 0.5),
        ("-5", 0.0),
        ("inf", MAX_RETRY_AFTER_S),
        ("1e999", MAX_RETRY_AFTER_S),
        ("nan", None),
        ("soon", None),
        (None, None),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
        ("Thu, 01 Jan 1970 00:01:40 GMT", 100.0),
    ],
)
def test_retry_after_parser(value: str | None, expected: float | None) -> None:
    assert retry_after_s(value, now=0.0) == expected


def test_submission_gives_the_budget_back_for_errors_that_created_no_task(pack: ModuleType) -> None:
    """wavespeed/tasks/paid/payment.py decides from the error type; check it against the errors raised here."""
    not_accepted: Callable[[BaseException], bool] = pack.wavespeed.tasks.paid.payment.was_not_accepted
    PE: Any = pack.wavespeed.core.errors  # the pack's own copy of the error classes
    assert not_accepted(PE.RateLimitedError("x", status=429, retry_after_s=3.0))
    assert not_accepted(PE.ConfigError("refused before sending"))
    assert not_accepted(PE.ConnectionFailedError("x"))  # a submit's: raised only when nothing was sent
    assert not_accepted(PE.ServerError("x"))  # raised before anything was sent (no status)
    assert not not_accepted(PE.ServerError("x", status=503))  # a 503 may come after the task was made
    assert not not_accepted(PE.SubmitUncertainError("x"))
    assert not not_accepted(PE.SubmitUncertainError("x", request_id="abc"))  # accepted and paid
