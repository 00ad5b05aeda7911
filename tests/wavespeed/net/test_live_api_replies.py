"""The client against the API as the public evidence shows it (WAVESPEED_API.md section 12): error
bodies with data.error / error_code, "Insufficient credits" under any status, a moderation refusal
(code 1200), and the cancelled / timeout / deleted terminal statuses, each with its own line."""

from __future__ import annotations

from typing import Any

import pytest
from wavespeed_kontext_pack.wavespeed.api.reply_types import Prediction
from wavespeed_kontext_pack.wavespeed.core import errors as E
from wavespeed_kontext_pack.wavespeed.core.vocabulary import FAILED_STATUSES, TaskStatus
from wavespeed_kontext_pack.wavespeed.limits.poller import submit_and_wait
from wavespeed_kontext_pack.wavespeed.net.client import WaveSpeedClient

from emulator import Emulator
from tests.wavespeed.net.test_client_faults import t2i

TASK = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("kind", "code"),
    [("string", 1401), ("string", "invalid_guidance_scale"), ("int", 1401)],
    ids=["string", "symbolic string", "int"],
)
def test_error_shows_data_error_and_error_code(
    emulator: Emulator, client: WaveSpeedClient, kind: str, code: int | str
) -> None:
    """A generic message with the reason only in data.error: the user sees the reason, and the
    ``error_code`` whether it comes as a string (the official clients' type) or a number."""
    emulator.configure(error_code_type=kind)
    emulator.inject(
        "submit",
        "status",
        status=400,
        message="Bad Request",
        detail="guidance_scale out of range",
        error_code=code,
    )
    with pytest.raises(E.InvalidRequestError) as info:
        client.submit(t2i())
    text = str(info.value)
    assert "guidance_scale out of range" in text and str(code) in text and "\n" not in text
    assert emulator.submissions == 0


def test_error_text_is_not_repeated_when_data_error_says_the_same(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    emulator.inject("submit", "status", status=400, message="prompt is required")
    with pytest.raises(E.InvalidRequestError) as info:
        client.submit(t2i())
    assert str(info.value).count("prompt is required") == 1


@pytest.mark.parametrize("status", [400, 402, 403, 500])
def test_insufficient_credits_under_any_status_is_low_balance(
    emulator: Emulator, client: WaveSpeedClient, status: int
) -> None:
    emulator.inject("submit", "status", status=status, message="Insufficient credits")
    with pytest.raises(E.InsufficientBalanceError) as info:
        client.submit(t2i())
    assert "top up" in str(info.value) and emulator.submissions == 0


def _one_task_ending(
    emulator: Emulator, client: WaveSpeedClient, expected: type[E.TaskFailedError], **how: Any
) -> tuple[E.TaskFailedError, Any]:
    """Run one task that the emulator ends as ``how`` says; the ``expected`` error and the task."""
    emulator.configure(inference_s=0.05)
    emulator.next_tasks(**how)
    with pytest.raises(expected) as info:
        submit_and_wait(client, t2i(), timeout_s=10)
    (task,) = emulator.history()
    return info.value, task


def test_moderation_refusal_is_one_short_sentence_and_not_retried(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    """What happened, what it cost, what to do, in words an artist reads: no task id, no code, not the
    server's text; the task stays on the error (and in the journal)."""
    error, task = _one_task_ending(emulator, client, E.ModerationRefusedError, moderated=True)
    text = str(error)
    assert isinstance(error, E.TaskFailedError) and error.code == 1200 and error.request_id == task.id
    assert text == (
        "WaveSpeed's safety check refused this prompt or image: change it and run again "
        "(WaveSpeed refunds a failed task within 3 hours)."
    )
    assert emulator.submissions == 1


@pytest.mark.parametrize(
    ("end", "words"),
    [("cancelled", "cancelled this task"), ("timeout", "timed out"), ("deleted", "deleted this task")],
)
def test_cancelled_timeout_and_deleted_end_the_wait_with_their_own_line(
    emulator: Emulator, client: WaveSpeedClient, end: str, words: str
) -> None:
    error, task = _one_task_ending(emulator, client, E.TaskFailedError, end_status=end)
    assert words in str(error) and error.request_id == task.id and "run it again" in str(error).lower()
    assert not isinstance(error, E.ModerationRefusedError)


@pytest.mark.parametrize(
    ("data", "kind", "words"),
    [
        ({"status": "deleted"}, E.TaskFailedError, "deleted this task and its result"),
        ({"status": "canceled"}, E.TaskFailedError, "cancelled this task"),
        (
            {"status": "failed", "error": "Input is potentially sensitive"},
            E.ModerationRefusedError,
            "safety check refused",
        ),
        ({"status": "failed", "code": 1200, "error": "refused"}, E.ModerationRefusedError, "safety check"),
        (
            {"status": "failed", "code": 1403, "error": "boom"},
            E.TaskFailedError,
            "could not make this image (code 1403): boom. Run it again",
        ),
    ],
)
def test_terminal_statuses_each_have_their_line(data: dict[str, Any], kind: type, words: str) -> None:
    prediction = Prediction.from_data({"id": TASK, **data})
    assert prediction.is_terminal and not prediction.is_completed
    failure = prediction.failure()
    assert type(failure) is kind and words in str(failure) and failure.request_id == TASK
    assert TASK not in str(failure)  # nothing to fetch: the id stays on the error and in the journal


def test_statuses_are_members() -> None:
    for name in ("cancelled", "timeout", "deleted"):
        assert TaskStatus(name) in FAILED_STATUSES
        assert Prediction.from_data({"id": TASK, "status": name.upper()}).status is TaskStatus(name)
