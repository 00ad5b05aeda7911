"""Issue 11 in a real ComfyUI: a result reply dribbled one byte at a time ends the prompt by Poll
Result's timeout_s plus one request timeout, with our one-line error as the execution_error."""

from __future__ import annotations

from typing import Any

from emulator import Emulator
from scripts.comfy_harness import ComfyServer, run_prompt
from tests.support.graphs import generate_chain

POLL_TIMEOUT_S = 10  # the node's minimum
REQUEST_TIMEOUT_S = 30.0  # the pack client's read timeout (one request)


def _dribbled_chain() -> dict[str, Any]:
    prompt = "a result that arrives one byte at a time"
    return generate_chain("h", prompt, seed=5, force_rerun=True, timeout_s=POLL_TIMEOUT_S)


def test_dribbling_result_reply_ends_by_poll_timeout(
    comfy_server: ComfyServer, wavespeed_emulator: Emulator
) -> None:
    # ~400 bytes at 0.5 s each: a single poll would take over three minutes without a wall clock.
    wavespeed_emulator.inject("result", "dribble", delay_s=0.5, times=1000)
    result = run_prompt(comfy_server, _dribbled_chain(), timeout=POLL_TIMEOUT_S + REQUEST_TIMEOUT_S + 20)
    assert result.status == "error", result.status
    assert result.error is not None and result.error["node_type"] == "WaveSpeedPollResult"
    message = result.error["exception_message"].strip()
    assert "\n" not in message and "Timed out" in message, message
    task_ids = [t.id for t in wavespeed_emulator.history()]
    assert len(task_ids) == 1 and task_ids[0] in message  # the paid task can be fetched later
    assert result.wall_s < POLL_TIMEOUT_S + REQUEST_TIMEOUT_S
    print(f"dribbled result: prompt ended after {result.wall_s:.1f}s (Poll timeout_s {POLL_TIMEOUT_S})")
