"""The two core nodes called directly (no ComfyUI) against the emulator over real sockets."""

from __future__ import annotations

import asyncio
import io
import math
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from emulator import Emulator
from emulator.behaviour.imagegen import size_for_aspect_ratio
from scripts.pack_loader import load_nodes
from tests.support.node_calls import call, chain as _chain, generate as _generate, node


def _served_pixels(url: str) -> np.ndarray:
    data = requests.get(url, timeout=10).content
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32) / 255.0


@pytest.mark.parametrize("ratio", ["1:1", "16:9", "9:21"])
def test_chain_returns_comfy_image_with_served_pixels(
    pack: ModuleType, pack_env: Emulator, ratio: str
) -> None:
    images, urls, rid, inference_ms, nsfw = asyncio.run(_chain(aspect_ratio=ratio))
    width, height = size_for_aspect_ratio(ratio)
    assert images.dtype.is_floating_point and str(images.dtype) == "torch.float32"
    assert tuple(images.shape) == (1, height, width, 3)
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    assert urls.startswith(pack_env.base_url) and len(urls.splitlines()) == 1
    np.testing.assert_array_equal(images[0].numpy(), _served_pixels(urls))
    assert len(rid) == 32 and rid == pack_env.task(rid).id
    assert inference_ms == 200 and nsfw is False
    assert pack_env.submissions == 1


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"prompt": "   "}, "prompt is empty"),
        ({"guidance_scale": 20.5}, "guidance_scale 20.5 is out of range"),
        ({"guidance_scale": 0.5}, "guidance_scale 0.5 is out of range"),
        ({"aspect_ratio": "5:4"}, "aspect_ratio '5:4' is not supported"),
        ({"seed": -2}, "seed -2 is out of range"),
        ({"seed": 2_147_483_648}, "seed 2147483648 is out of range"),
    ],
)
def test_bad_input_fails_in_one_line_before_any_request(
    pack: ModuleType, pack_env: Emulator, kwargs: dict[str, Any], fragment: str
) -> None:
    prompt = kwargs.pop("prompt", "a red fox")
    with pytest.raises(pack.wavespeed.core.errors.InvalidRequestError) as info:
        asyncio.run(_generate(prompt, **kwargs))
    assert fragment in str(info.value) and "\n" not in str(info.value)
    assert pack_env.requests == [] and pack_env.submissions == 0


def test_missing_key_names_the_environment_variable(
    pack: ModuleType, pack_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WAVESPEED_API_KEY")
    with pytest.raises(pack.wavespeed.core.errors.ConfigError) as info:
        asyncio.run(_generate())
    message = str(info.value)
    assert "WAVESPEED_API_KEY" in message and "\n" not in message
    assert pack_env.requests == []


def test_cancel_stops_the_wait_within_a_second_and_names_the_task(
    pack: ModuleType, pack_env: Emulator
) -> None:
    bridge = pack.nodes.shared.comfy_bridge
    pack_env.next_tasks(never_finish=True)
    pressed_wall: list[float] = []

    async def scenario() -> tuple[str, float, BaseException | None]:
        task, rid = await _generate()
        waiting = asyncio.ensure_future(call("WaveSpeedPollResult", 600, "pass through", task=task))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        pressed = time.monotonic()
        pressed_wall.append(time.time())
        bridge.request_interrupt()
        try:
            await asyncio.wait_for(waiting, timeout=5)
        except BaseException as exc:  # noqa: BLE001 - the exception is what we check
            return rid, time.monotonic() - pressed, exc
        return rid, time.monotonic() - pressed, None

    try:
        rid, latency, exc = asyncio.run(scenario())
    finally:
        bridge.clear_interrupt()
    assert isinstance(exc, pack.wavespeed.core.errors.CancelledError)
    assert latency < 1.0
    assert exc.request_id == rid and rid in str(exc) and "\n" not in str(exc)
    time.sleep(0.8)  # give a leaked background poller the time to show itself
    polls_after = [r for r in pack_env.requests if r.route == "result" and r.t > pressed_wall[0] + 0.3]
    assert polls_after == []  # nothing keeps polling after Cancel
    assert pack_env.submissions == 1


def test_cancel_also_stops_sibling_waits(pack: ModuleType, pack_env: Emulator) -> None:
    """ComfyUI clears its interrupt flag when the first node raises; the others must stop too."""
    bridge = pack.nodes.shared.comfy_bridge
    pack_env.next_tasks(times=3, never_finish=True)

    async def scenario() -> list[BaseException | Any]:
        tasks = [(await _generate(f"p{i}"))[0] for i in range(3)]
        waits = [
            asyncio.ensure_future(call("WaveSpeedPollResult", 600, "pass through", task=t)) for t in tasks
        ]
        await asyncio.sleep(0.3)
        bridge.request_interrupt()
        return await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), timeout=3)

    try:
        results = asyncio.run(scenario())
    finally:
        bridge.clear_interrupt()
    assert all(isinstance(r, pack.wavespeed.core.errors.CancelledError) for r in results)


def test_four_chains_are_in_flight_at_once(pack: ModuleType, pack_env: Emulator) -> None:
    pack_env.configure(inference_s=1.0)

    async def scenario() -> list[Any]:
        return await asyncio.gather(*[_chain(f"prompt {i}") for i in range(4)])

    results = asyncio.run(scenario())
    assert len({r[2] for r in results}) == 4
    submits = sorted(r.t for r in pack_env.requests if r.route == "submit")
    first_download = min(r.t for r in pack_env.requests if r.route == "download")
    # All four tasks were submitted before any result came back: they overlapped, not queued.
    assert len(submits) == 4 and submits[-1] < first_download  # wall-time figures: bench_concurrency


def test_sync_mode_needs_no_poll_request(pack: ModuleType, pack_env: Emulator) -> None:
    images, _, rid, _, _ = asyncio.run(_chain(sync_mode=True))
    assert images.shape[0] == 1
    routes = [r.route for r in pack_env.requests]
    assert routes.count("submit") == 1 and "result" not in routes and routes.count("download") == 1
    assert pack_env.task(rid).input["enable_sync_mode"] is True


def test_poll_by_pasted_request_id_fetches_again_without_a_new_task(
    pack: ModuleType, pack_env: Emulator
) -> None:
    first, _, rid, _, _ = asyncio.run(_chain())
    again, _, rid2, _, _ = asyncio.run(
        call("WaveSpeedPollResult", 60, "pass through", request_id=f"  {rid}\n")
    )
    assert rid2 == rid and pack_env.submissions == 1
    np.testing.assert_array_equal(first.numpy(), again.numpy())


def test_poll_without_task_or_id_says_what_to_connect(pack: ModuleType, pack_env: Emulator) -> None:
    with pytest.raises(pack.wavespeed.core.errors.InvalidRequestError, match="connect a 'task'"):
        asyncio.run(call("WaveSpeedPollResult", 60, "pass through"))
    assert pack_env.requests == []


def test_failed_task_surfaces_the_server_message(pack: ModuleType, pack_env: Emulator) -> None:
    """(A moderation refusal, code 1200, is its own short sentence: test_live_api_replies.py.)"""
    pack_env.next_tasks(fail="Media access failed for the input URL", fail_code=1402)
    with pytest.raises(pack.wavespeed.core.errors.TaskFailedError) as info:
        asyncio.run(_chain())
    assert "Media access failed for the input URL" in str(info.value) and "1402" in str(info.value)
    assert info.value.code == 1402 and "\n" not in str(info.value)


def test_a_task_deleted_on_the_server_ends_poll_result_in_one_line(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path
) -> None:
    """``deleted`` is a terminal status (the official SDKs end on it): one line, the task on the error
    (nothing to fetch, so the line does not name it); the journal marks it ended, so the same inputs queued again make a new task instead of reusing it."""
    pack_env.next_tasks(end_status="deleted")
    with pytest.raises(pack.wavespeed.core.errors.TaskFailedError) as info:
        asyncio.run(_chain("deleted on the server"))
    (gone,) = [t.id for t in pack_env.history()]
    text = str(info.value)
    assert "deleted this task" in text and "\n" not in text and info.value.request_id == gone
    images, _, rid, _, _ = asyncio.run(_chain("deleted on the server"))
    assert rid != gone and images.shape[0] == 1 and pack_env.submissions == 2


def test_nsfw_policy(pack: ModuleType, pack_env: Emulator) -> None:
    pack_env.next_tasks(times=2, nsfw=True)
    *_, flagged = asyncio.run(_chain("a"))
    assert flagged is True
    with pytest.raises(pack.wavespeed.core.errors.ContentFlaggedError, match="nsfw_policy"):
        asyncio.run(_chain("b", policy="fail"))


def test_timeout_names_the_request_id_for_later(pack: ModuleType, pack_env: Emulator) -> None:
    pack_env.next_tasks(never_finish=True)

    async def scenario() -> Any:
        task, _ = await _generate()
        # the node's minimum timeout is 10 s; the function takes any positive value
        return await call("WaveSpeedPollResult", 1, "pass through", task=task)

    with pytest.raises(pack.wavespeed.core.errors.WaitTimeoutError) as info:
        asyncio.run(scenario())
    assert info.value.request_id and info.value.request_id in str(info.value)
    assert "Poll Result" in str(info.value)


def test_seed_minus_one_always_reruns_and_fixed_seed_caches(pack: ModuleType) -> None:
    gen_cls = node("FluxKontextMaxGenerate")
    assert math.isnan(gen_cls.fingerprint_inputs(seed=-1))
    assert math.isnan(gen_cls.fingerprint_inputs(seed=5, force_rerun=True))
    assert gen_cls.fingerprint_inputs(seed=5) == gen_cls.fingerprint_inputs(seed=5)
    assert gen_cls.fingerprint_inputs(seed=5) != gen_cls.fingerprint_inputs(seed=6)


def test_seed_minus_one_lets_the_server_pick(pack: ModuleType, pack_env: Emulator) -> None:
    _, _, rid, _, _ = asyncio.run(_chain(seed=-1))
    assert "seed" not in pack_env.task(rid).input


def test_node_functions_are_async_and_do_not_block_the_loop(pack: ModuleType, pack_env: Emulator) -> None:
    """While a chain waits, the event loop keeps ticking (blocking I/O is off the loop)."""
    pack_env.configure(inference_s=0.6)
    ticks = 0
    stop = threading.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    async def scenario() -> None:
        tick = asyncio.ensure_future(ticker())
        await _chain()
        stop.set()
        await tick

    asyncio.run(scenario())
    assert ticks > 30


def test_the_model_a_node_is_priced_by_is_the_model_it_submits_to(
    pack: ModuleType, pack_env: Emulator
) -> None:
    """nodes/v3/ prices a node's badge by its KIND's model in the table: Generate must really submit to
    that model (the default family's, [max])."""
    models = pack.wavespeed.api.models
    mapping = load_nodes()
    assert (
        models.model_for(mapping["FluxKontextMaxGenerate"].KIND).id
        == "wavespeed-ai/flux-kontext-max/text-to-image"
    )
    assert models.model_for(mapping["FluxKontextMaxEdit"].KIND).id == "wavespeed-ai/flux-kontext-max"
    assert (
        models.model_for(mapping["FluxKontextMaxMultiReference"].KIND).id
        == "wavespeed-ai/flux-kontext-max/multi"
    )
    assert not hasattr(mapping["WaveSpeedPollResult"], "KIND")  # free: no badge
    assert not hasattr(mapping["WaveSpeedRecentTasks"], "KIND")
    asyncio.run(_generate())
    (submit,) = [r for r in pack_env.requests if r.route == "submit"]
    assert submit.path == f"/api/v3/{models.model_for(mapping['FluxKontextMaxGenerate'].KIND).id}"
