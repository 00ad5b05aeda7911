"""What a node's status line and error say after a submit fails: never "submitting · $0.08" left
standing as if the task ran and was charged.

Against the emulator: a refused key and a submit refused before any task existed read
"not submitted · $0, nothing was accepted" (the error says the same); a connection reset after the
request was sent reads "may have been charged" (the pack cannot tell, so it pays nothing silently).
"""

from __future__ import annotations

import asyncio
from types import ModuleType

import pytest

from emulator import Emulator
from tests.support.node_calls import capture_status, generate

NOT_CHARGED = "$0, nothing was accepted"


def _failed_generate(pack: ModuleType, seed: int) -> BaseException:
    with pytest.raises(pack.wavespeed.core.errors.WaveSpeedError) as info:
        asyncio.run(generate(seed=seed, unique_id="7"))
    return info.value


def test_a_refused_key_reads_not_submitted_and_nothing_charged(
    pack: ModuleType, pack_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAVESPEED_API_KEY", "not-the-key-0123456789")
    status = capture_status(pack, monkeypatch)
    error = _failed_generate(pack, seed=11)
    assert isinstance(error, pack.wavespeed.core.errors.AuthenticationError)
    assert NOT_CHARGED in str(error) and len(str(error)) <= 300
    assert status[-1] == f"not submitted · {NOT_CHARGED}", status
    assert pack_env.submissions == 0


def test_a_submit_rejected_before_any_task_reads_nothing_charged(
    pack: ModuleType, pack_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    pack_env.inject("submit", "status", status=400, message="bad thing")
    status = capture_status(pack, monkeypatch)
    error = _failed_generate(pack, seed=12)
    assert NOT_CHARGED in str(error)
    assert status[-1] == f"not submitted · {NOT_CHARGED}", status


def test_a_reset_after_the_request_was_sent_reads_may_have_been_charged(
    pack: ModuleType, pack_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    pack_env.inject("submit", "reset_after_accept")
    status = capture_status(pack, monkeypatch)
    error = _failed_generate(pack, seed=13)
    assert NOT_CHARGED not in str(error)
    assert status[-1] == "submit failed · may have been charged: check your WaveSpeed history", status
