"""The nodes within an account's limits (wavespeed/tasks/accounts.py), called as ComfyUI awaits them, against an
emulated account with tiers over real sockets: a 429 is waiting text, never an error, and never a
second charge; a task WaveSpeed holds in `created` reads "queued"."""

from __future__ import annotations

import asyncio
import logging
from types import ModuleType
from typing import Any

import pytest

from emulator import Emulator, Tier
from tests.support.node_calls import call, nodes_client


async def _chain(pack: ModuleType, prompt: str, seed: int, node: str) -> Any:
    task, _ = await call("FluxKontextMaxGenerate", prompt, seed, 3.5, "1:1", False, unique_id=f"{node}-gen")
    return await call("WaveSpeedPollResult", 60, "pass through", task=task, unique_id=f"{node}-poll")


def test_four_chains_on_bronze_all_complete_with_one_submission_each(
    pack: ModuleType, pack_env: Emulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The side-by-side template on a new account: 2 tasks a minute (scaled to 4 s), 2 at once.
    pack_env.configure(tier="bronze", minute_s=4.0, inference_s=0.3)
    monkeypatch.setenv("WAVESPEED_RATE_WINDOW_S", "4")
    caplog.set_level(logging.DEBUG, logger="wavespeed")

    async def all_four() -> list[Any]:
        return await asyncio.gather(*(_chain(pack, f"side by side {i}", 10 + i, f"n{i}") for i in range(4)))

    results = asyncio.run(all_four())
    assert [tuple(r[0].shape) for r in results] == [(1, 1024, 1024, 3)] * 4
    assert pack_env.submissions == 4  # exactly one accepted submission per image
    assert len({r[2] for r in results}) == 4
    assert pack_env.rate_limited >= 1  # the limit was really hit, and no chain failed on it
    # The 429s were waited out as status text; once the limit was learned, no more were sent.
    assert pack_env.rate_limited <= 2
    assert "waiting for WaveSpeed's rate limit, resets in ~" in caplog.text


def test_a_task_held_by_the_concurrency_limit_reads_queued(
    pack: ModuleType, pack_env: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    pack_env.configure(
        tier=Tier("one-at-once", 100, 1), minute_s=600, inference_s=2.0
    )  # queued 2 s: past the first look (~1.2 s)
    caplog.set_level(logging.DEBUG, logger="wavespeed")

    async def two() -> list[Any]:
        return await asyncio.gather(_chain(pack, "first", 1, "a"), _chain(pack, "second", 2, "b"))

    results = asyncio.run(two())
    assert all(r[0].shape[0] == 1 for r in results) and pack_env.submissions == 2
    assert "queued at WaveSpeed" in caplog.text
    assert "created ·" not in caplog.text


def test_the_nodes_submit_hands_a_429_to_the_scheduler_after_one_post(
    pack: ModuleType, pack_env: Emulator
) -> None:
    """The nodes' POST never retries a 429 itself (the scheduler waits for the window): called
    directly, with no compatibility check of the client's signature in between."""
    errors = pack.wavespeed.errors
    models = pack.wavespeed
    client = nodes_client(pack)
    pack_env.inject("submit", "status", status=429, times=5)
    with pytest.raises(errors.RateLimitedError):
        pack.wavespeed.tasks.accounts._submit_once(
            client, models.KontextRequest(prompt="once"), lambda: False
        )
    assert sum(r.route == "submit" for r in pack_env.requests) == 1 and pack_env.submissions == 0
