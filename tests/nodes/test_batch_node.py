"""FLUX.1 Kontext [max] Batch (nodes/batch.py) against the emulator over real sockets: prompts x
variations -> one IMAGE batch, within the account's limits, one charge per image, and a partial
failure that keeps the paid images."""

from __future__ import annotations

import asyncio
import importlib
import logging
from types import ModuleType
from typing import Any

import pytest

from emulator import Emulator
from tests.support.node_calls import call


def _batch(pack: ModuleType, prompts: str, variations: int, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "seed": 100,
        "guidance_scale": 3.5,
        "aspect_ratio": "1:1",
        **kw,
    }
    return asyncio.run(call("FluxKontextMaxBatch", prompts, variations, **args))


def test_requests_are_prompts_times_variations_with_incrementing_seeds(pack: ModuleType) -> None:
    batch_requests = pack.nodes.batch.batch_requests
    reqs = batch_requests("a cat\n\n  a dog  \n", 3, 100, 3.5, "1:1")
    assert [(r.prompt, r.seed) for r in reqs] == [
        ("a cat", 100),
        ("a cat", 101),
        ("a cat", 102),
        ("a dog", 100),
        ("a dog", 101),
        ("a dog", 102),
    ]
    assert {r.seed for r in batch_requests("x", 4, -1, 3.5, "1:1")} == {-1}
    errors = pack.wavespeed.core.errors
    with pytest.raises(errors.InvalidRequestError, match="prompts is empty"):
        batch_requests(" \n ", 2, 1, 3.5, "1:1")
    with pytest.raises(errors.InvalidRequestError, match="over the 85 one IMAGE batch may hold"):
        batch_requests("a\nb\nc", 40, 1, 3.5, "1:1")


def test_the_task_bound_follows_the_image_batch_budget(pack: ModuleType) -> None:
    images = importlib.import_module(f"{pack.__name__}.wavespeed.images.batch_plan")
    assert pack.nodes.batch.MAX_BATCH_BYTES == images.MAX_BATCH_BYTES


def test_six_variations_on_bronze_are_one_batch_with_one_charge_each(
    pack: ModuleType, pack_env: Emulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wavespeed")
    pack_env.configure(tier="bronze", minute_s=2.0, inference_s=0.3)
    monkeypatch.setenv("WAVESPEED_RATE_WINDOW_S", "2")
    images, urls, ids, failures = _batch(pack, "a lighthouse at dusk", 6)
    assert tuple(images.shape) == (6, 1024, 1024, 3)
    assert pack_env.submissions == 6 and failures == ""
    rids = ids.splitlines()
    assert len(set(rids)) == 6 and len(urls.splitlines()) == 6
    assert [pack_env.task(r).seed for r in rids] == [100, 101, 102, 103, 104, 105]  # output order
    assert pack_env.rate_limited >= 1  # the limit was hit and waited out, not raised
    assert "batch of 6 · $0.48" in caplog.text  # the whole price, before anything was spent
    assert "· waiting for WaveSpeed's rate limit, resets in ~" in caplog.text


def test_a_partial_failure_keeps_the_paid_images_and_names_the_failure(
    pack: ModuleType, pack_env: Emulator
) -> None:
    pack_env.configure(inference_s=0.2)
    pack_env.next_tasks(times=1, fail="NSFW content detected", fail_code=1403)
    images, _urls, ids, failures = _batch(pack, "a red fox", 3, seed=7)
    assert images.shape[0] == 2 and len(ids.splitlines()) == 2
    assert "NSFW content detected" in failures and len(failures.splitlines()) == 1
    assert pack_env.submissions == 3


def test_on_failure_fail_raises_naming_the_paid_ids(pack: ModuleType, pack_env: Emulator) -> None:
    pack_env.configure(inference_s=0.2)
    pack_env.next_tasks(times=1, fail="boom", fail_code=1403)
    with pytest.raises(pack.wavespeed.core.errors.TaskFailedError, match="1 of 2 batch tasks failed") as info:
        _batch(pack, "a blue jay", 2, seed=9, on_failure="fail")
    assert "paid images kept, fetch by id:" in str(info.value)


def test_the_whole_batch_price_must_fit_the_budget_before_anything_is_sent(
    pack: ModuleType, pack_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAVESPEED_SESSION_BUDGET_USD", "0.20")
    pack.wavespeed.tasks.paid.submit.reset_session_state()
    with pytest.raises(pack.wavespeed.core.errors.BudgetExceededError, match=r"costs \$0.24 \(3 images\)"):
        _batch(pack, "an owl", 3)
    assert pack_env.requests == []
