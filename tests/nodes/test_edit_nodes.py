"""The edit nodes called directly (no ComfyUI) against the emulator over real sockets.

The emulator's edit is a colour inversion (multi: references resized to the first one's height,
joined left to right, inverted), so every output pixel can be predicted from the inputs.
"""

from __future__ import annotations

import asyncio
import io
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import requests
import torch
from PIL import Image

from emulator import Emulator, render_edit
from tests.support.node_calls import (
    call,
    edit as _edit,
    image as _image,
    multi as _multi,
    node,
    poll as _poll,
)

# Public-looking, so it passes the local checks; the emulator fetches only its own files (1402 here).
OUT_OF_REACH_URL = "https://example.com/never/there.png"


pytestmark = pytest.mark.usefixtures("fresh_upload_cache")


def _u8(image: Any, index: int = 0) -> np.ndarray:
    return np.asarray((image[index] * 255.0).round().to(torch.uint8).numpy())


def _decode(data: bytes) -> tuple[np.ndarray, str]:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB")), im.mode


def _served(url: str) -> bytes:
    return requests.get(url, timeout=10).content


# --------------------------------------------------------------------------- cache rule (widgets: test_v3_schema.py)


@pytest.mark.parametrize("key", ["FluxKontextMaxEdit", "FluxKontextMaxMultiReference"])
def test_fingerprint_follows_generate(pack: ModuleType, key: str) -> None:
    cls = node(key)
    assert math.isnan(cls.fingerprint_inputs(seed=-1, prompt="x"))
    assert math.isnan(cls.fingerprint_inputs(seed=5, force_rerun=True))
    assert cls.fingerprint_inputs(seed=5, force_rerun=False, image=None) == 5


# --------------------------------------------------------------------------- Edit


def test_edit_uploads_exact_png_and_returns_the_inverted_image(pack: ModuleType, pack_env: Emulator) -> None:
    # Pixel-exact inversion at the input's own size: kinder than the evidence (an edit without
    # aspect_ratio comes back at the nearest preferred Kontext size; issue 18).
    pack_env.configure(output_format="png", edit_size="input")
    image = _image(seed=1)

    async def scenario() -> tuple[Any, Any, str]:
        task, rid = await _edit(image=image)
        return task, await _poll(task), rid

    task, (out, urls, rid, _, _), returned_rid = asyncio.run(scenario())
    assert returned_rid == rid == task.request_id and task.model == "wavespeed-ai/flux-kontext-max"
    (upload,) = pack_env.uploads
    pixels, mode = _decode(upload)
    assert mode == "RGB"
    np.testing.assert_array_equal(pixels, _u8(image))
    sent = pack_env.task(rid).input
    assert "aspect_ratio" not in sent  # "match input" leaves it out
    assert _decode(_served(sent["image"]))[0].tobytes() == pixels.tobytes()
    assert tuple(out.shape) == (1, 96, 128, 3)
    np.testing.assert_array_equal(_u8(out), 255 - _u8(image))
    assert urls.startswith(pack_env.base_url)


def test_edit_fixed_aspect_ratio_is_sent(pack: ModuleType, pack_env: Emulator) -> None:
    async def scenario() -> tuple[str, Any]:
        task, rid = await _edit(image=_image(), aspect_ratio="16:9")
        return rid, await _poll(task)

    rid, (out, *_rest) = asyncio.run(scenario())
    assert pack_env.task(rid).input["aspect_ratio"] == "16:9"
    assert tuple(out.shape) == (1, 752, 1392, 3)


def test_edit_uses_the_first_image_of_a_batch(pack: ModuleType, pack_env: Emulator) -> None:
    batch = _image(seed=2, batch=3)
    asyncio.run(_edit(image=batch))
    (upload,) = pack_env.uploads
    np.testing.assert_array_equal(_decode(upload)[0], _u8(batch, 0))
    assert pack_env.submissions == 1


@pytest.mark.parametrize("channels", [4, 1])
def test_alpha_is_dropped_and_grey_replicated(pack: ModuleType, pack_env: Emulator, channels: int) -> None:
    image = _image(seed=3, channels=channels)
    asyncio.run(_edit(image=image))
    pixels, mode = _decode(pack_env.uploads[0])
    assert mode == "RGB"
    expected = _u8(image)[..., :3] if channels == 4 else np.repeat(_u8(image), 3, axis=2)
    np.testing.assert_array_equal(pixels, expected)


def test_connected_image_wins_over_image_url(pack: ModuleType, pack_env: Emulator) -> None:
    _, rid = asyncio.run(_edit(image=_image(), image_url=OUT_OF_REACH_URL))
    assert len(pack_env.uploads) == 1
    assert pack_env.task(rid).input["image"] != OUT_OF_REACH_URL


def test_same_image_is_uploaded_once(pack: ModuleType, pack_env: Emulator) -> None:
    image = _image(seed=4)
    _, rid1 = asyncio.run(_edit(image=image))
    _, rid2 = asyncio.run(_edit(image=image.clone(), seed=8))
    assert len(pack_env.uploads) == 1 and pack_env.submissions == 2
    assert pack_env.task(rid1).input["image"] == pack_env.task(rid2).input["image"]


def test_concurrent_edits_of_the_same_image_share_one_upload(pack: ModuleType, pack_env: Emulator) -> None:
    pack_env.inject("upload", "slow", delay_s=0.4)  # so the second node really waits for the first
    image = _image(seed=5)

    async def scenario() -> list[Any]:
        return list(
            await asyncio.gather(
                _edit("a", image=image),
                _edit("b", image=image.clone()),
                _edit("c", image=image),
            )
        )

    results = asyncio.run(scenario())
    assert len(pack_env.uploads) == 1 and pack_env.submissions == 3
    assert len({pack_env.task(rid).input["image"] for _, rid in results}) == 1


def test_failed_upload_is_not_cached(pack: ModuleType, pack_env: Emulator) -> None:
    errors = pack.wavespeed.core.errors
    pack_env.inject("upload", "status", status=400, message="Unsupported file type")
    image = _image(seed=6)
    with pytest.raises(errors.InvalidRequestError, match="Unsupported file type"):
        asyncio.run(_edit(image=image))
    assert pack_env.submissions == 0
    asyncio.run(_edit(image=image))
    assert len(pack_env.uploads) == 1 and pack_env.submissions == 1


def test_a_cached_url_that_has_gone_is_uploaded_again(pack: ModuleType, pack_env: Emulator) -> None:
    """The cache lives as long as ComfyUI; uploaded files may not (expiry, or an emulator reset)."""
    # Pixel-exact inversion at the input's own size: kinder than the evidence (an edit without
    # aspect_ratio comes back at the nearest preferred Kontext size; issue 18).
    pack_env.configure(edit_size="input")
    image = _image(seed=9)
    asyncio.run(_edit(image=image))
    pack_env.reset()  # forgets every stored file, as an expired upload would be gone

    async def scenario() -> Any:
        task, _ = await _edit(image=image)
        return await _poll(task)

    out, *_ = asyncio.run(scenario())
    assert len(pack_env.uploads) == 1 and pack_env.submissions == 1
    heads = [r for r in pack_env.requests if r.method == "HEAD"]
    assert len(heads) == 1 and heads[0].authorization is False and heads[0].status == 404
    assert tuple(out.shape) == (1, 96, 128, 3)


def test_cache_waiter_uploads_itself_when_the_uploader_was_cancelled(pack: ModuleType) -> None:
    uploads, errors = pack.wavespeed.net.reference_uploads, pack.wavespeed.core.errors
    cache = uploads.UploadCache()
    prepared = uploads.prepare(_image(), 0, "image")
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def cancelled(_: bytes) -> str:
        calls.append("first")
        started.set()
        release.wait(5)
        raise errors.CancelledError("Cancelled.")

    def works(_: bytes) -> str:
        calls.append("second")
        return "https://cdn.example/a.png"

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(cache.get_or_upload, "base", prepared, cancelled)
        assert started.wait(5)
        second = pool.submit(cache.get_or_upload, "base", prepared, works)
        time.sleep(0.2)
        assert not second.done()  # it waits for the first upload instead of starting its own
        release.set()
        assert isinstance(first.exception(5), errors.CancelledError)
        assert second.result(5) == "https://cdn.example/a.png"
    assert calls == ["first", "second"]
    assert cache.get_or_upload("base", prepared, cancelled) == "https://cdn.example/a.png"
    assert cache.get_or_upload("other base", prepared, works) == "https://cdn.example/a.png"
    assert calls == ["first", "second", "second"]  # keyed by base URL too


def test_cache_waiters_share_the_uploaders_error_and_the_next_run_retries(pack: ModuleType) -> None:
    uploads, errors = pack.wavespeed.net.reference_uploads, pack.wavespeed.core.errors
    cache = uploads.UploadCache()
    prepared = uploads.prepare(_image(), 0, "image")
    started, release = threading.Event(), threading.Event()

    def broken(_: bytes) -> str:
        started.set()
        release.wait(5)
        raise errors.ServerError("upload failed")

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(cache.get_or_upload, "base", prepared, broken)
        assert started.wait(5)
        second = pool.submit(cache.get_or_upload, "base", prepared, broken)
        time.sleep(0.1)
        release.set()
        assert isinstance(first.exception(5), errors.ServerError)
        assert isinstance(second.exception(5), errors.ServerError)
    assert cache.uploads == 1 and len(cache) == 0
    assert (
        cache.get_or_upload("base", prepared, lambda _: "https://cdn.example/b.png")
        == "https://cdn.example/b.png"
    )
    expired = uploads.UploadCache(ttl_s=-1.0)
    expired.get_or_upload("base", prepared, lambda _: "https://cdn.example/c.png")
    assert expired.lookup("base", prepared.sha256) is None


def test_chained_edits_through_urls_upload_nothing(pack: ModuleType, pack_env: Emulator) -> None:
    """Generate -> Poll -> (image_urls) Edit -> Poll -> Edit -> Poll: two inversions = the original."""

    async def scenario() -> tuple[Any, Any, Any]:
        task, _ = await call("FluxKontextMaxGenerate", "a lighthouse", 11, 3.5, "4:3", False)
        first, urls, *_ = await _poll(task)
        task, _ = await _edit("make it night", image_url=urls + "\n")
        middle, urls, *_ = await _poll(task)
        task, _ = await _edit("make it day again", image_url=urls)
        final, *_ = await _poll(task)
        return first, middle, final

    first, middle, final = asyncio.run(scenario())
    assert pack_env.uploads == [] and pack_env.submissions == 3
    assert first.shape == middle.shape == final.shape == (1, 880, 1184, 3)
    assert float((middle - (1.0 - first)).abs().mean()) < 2 / 255  # JPEG q95 in between
    diff = (final - first).abs()
    assert float(diff.mean()) < 2 / 255 and float(diff.max()) < 40 / 255


def test_unreachable_url_fails_the_task_with_the_server_message(pack: ModuleType, pack_env: Emulator) -> None:
    errors = pack.wavespeed.core.errors

    async def scenario() -> Any:
        task, _ = await _edit(image_url=OUT_OF_REACH_URL)
        return await _poll(task)

    with pytest.raises(errors.TaskFailedError) as info:
        asyncio.run(scenario())
    assert info.value.code == 1402
    assert "Failed to download image from the provided URL." in str(info.value)
    assert "\n" not in str(info.value) and info.value.request_id not in str(info.value)  # nothing to fetch
    assert pack_env.uploads == []


def test_sync_mode_edit_needs_no_poll_request(pack: ModuleType, pack_env: Emulator) -> None:
    # Pixel-exact inversion at the input's own size: kinder than the evidence (an edit without
    # aspect_ratio comes back at the nearest preferred Kontext size; issue 18).
    pack_env.configure(output_format="png", edit_size="input")
    image = _image(seed=7)

    async def scenario() -> Any:
        task, _ = await _edit(image=image, sync_mode=True)
        assert task.prediction is not None
        return await _poll(task)

    out, *_ = asyncio.run(scenario())
    assert not [r for r in pack_env.requests if r.route == "result"]
    np.testing.assert_array_equal(_u8(out), 255 - _u8(image))


def test_cancel_during_upload_stops_promptly_without_submitting(pack: ModuleType, pack_env: Emulator) -> None:
    bridge = pack.nodes.shared.comfy_bridge
    cache = pack.wavespeed.net.reference_uploads.CACHE
    pack_env.inject("upload", "slow", delay_s=1.0)
    image = _image(seed=8)

    async def scenario() -> tuple[BaseException | None, float]:
        job = asyncio.ensure_future(_edit(image=image))
        await asyncio.sleep(0.3)
        pressed = time.monotonic()
        bridge.request_interrupt()
        try:
            await asyncio.wait_for(job, timeout=5)
        except BaseException as exc:  # noqa: BLE001 - the exception is what we check
            return exc, time.monotonic() - pressed
        return None, time.monotonic() - pressed

    try:
        exc, latency = asyncio.run(scenario())
    finally:
        bridge.clear_interrupt()
    assert isinstance(exc, pack.wavespeed.core.errors.CancelledError) and latency < 0.5
    assert pack_env.submissions == 0
    # The upload itself is not interrupted (the client's upload takes no cancel callback); it
    # finishes in the background and still fills the cache, so the next run uploads nothing new.
    deadline = time.monotonic() + 5
    while cache.in_flight and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cache.in_flight == 0 and len(pack_env.uploads) == 1
    asyncio.run(_edit(image=image))
    assert len(pack_env.uploads) == 1 and pack_env.submissions == 1


# --------------------------------------------------------------------------- Multi-Reference


def test_multi_sends_every_reference_in_order(pack: ModuleType, pack_env: Emulator) -> None:
    pack_env.configure(output_format="png")
    pair = torch.cat([_image(80, 100, seed=10), _image(80, 100, seed=11)])
    tall = _image(160, 90, seed=12)

    async def scenario() -> tuple[str, str, Any]:
        task, _ = await call("FluxKontextMaxGenerate", "a red fox", 3, 3.5, "1:1", False)
        _, url, *_ = await _poll(task)
        task, rid = await _multi(image_1=pair, image_3=tall, image_urls=f"\n  {url}  \n")
        out, *_ = await _poll(task)
        return url, rid, out

    url, rid, out = asyncio.run(scenario())
    sent = pack_env.task(rid).input
    assert pack_env.task(rid).model == "wavespeed-ai/flux-kontext-max/multi"
    assert "aspect_ratio" not in sent and len(sent["images"]) == 4 and sent["images"][3] == url
    expected_refs = [_u8(pair, 0), _u8(pair, 1), _u8(tall)]
    assert len(pack_env.uploads) == 3
    for ref_url, expected in zip(sent["images"][:3], expected_refs, strict=True):
        served = _served(ref_url)
        assert served in pack_env.uploads
        np.testing.assert_array_equal(_decode(served)[0], expected)
    from_url = _decode(_served(url))[0]
    np.testing.assert_array_equal(_u8(out), render_edit([*expected_refs, from_url], None))


def test_multi_same_image_twice_is_uploaded_once(pack: ModuleType, pack_env: Emulator) -> None:
    image = _image(seed=13)
    _, rid = asyncio.run(_multi(image_1=image, image_2=image.clone(), image_4=_image(seed=14)))
    images = pack_env.task(rid).input["images"]
    assert len(images) == 3 and images[0] == images[1] != images[2]
    assert len(pack_env.uploads) == 2


def test_multi_urls_only_upload_nothing(pack: ModuleType, pack_env: Emulator) -> None:
    urls = "https://example.com/a.png\nhttp://example.com/b.jpg"
    _, rid = asyncio.run(_multi(image_urls=urls, aspect_ratio="3:2"))
    sent = pack_env.task(rid).input
    assert sent["images"] == urls.splitlines() and sent["aspect_ratio"] == "3:2"
    assert pack_env.uploads == []


# --------------------------------------------------------------------------- checks before any request


def _too_big_png(pack: ModuleType, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(pack.wavespeed.net.reference_uploads, "MAX_UPLOAD_BYTES", 10_000)
    return {"image": _image(128, 128, seed=20)}


EDIT_CASES: list[tuple[str, Any, str]] = [
    ("no image", lambda pack, mp: {}, "No image to edit"),
    ("blank url", lambda pack, mp: {"image_url": "  \n \n"}, "No image to edit"),
    ("empty batch", lambda pack, mp: {"image": torch.zeros(0, 96, 96, 3)}, "empty batch"),
    ("too small", lambda pack, mp: {"image": _image(63, 200)}, "at least 64 px"),
    ("too large", lambda pack, mp: {"image": torch.zeros(1, 64, 4097, 3)}, "at most 4096 px"),
    ("two channels", lambda pack, mp: {"image": torch.zeros(1, 96, 96, 2)}, "2 channels"),
    ("not a tensor", lambda pack, mp: {"image": [[0.5]]}, "is not an IMAGE"),
    ("png too big", _too_big_png, "over the 0 MB upload limit"),
    ("ftp url", lambda pack, mp: {"image_url": "ftp://example.com/a.png"}, "must be an http(s) URL"),
    ("no scheme", lambda pack, mp: {"image_url": "example.com/a.png"}, "must be an http(s) URL"),
    ("data uri", lambda pack, mp: {"image_url": "data:image/png;base64,AAAA"}, "must be an http(s) URL"),
    ("no host", lambda pack, mp: {"image_url": "https:///a.png"}, "must be an http(s) URL"),
    ("space", lambda pack, mp: {"image_url": "https://example.com/a b.png"}, "must be an http(s) URL"),
    ("empty prompt", lambda pack, mp: {"prompt": "  ", "image": _image()}, "prompt is empty"),
    ("bad guidance", lambda pack, mp: {"guidance_scale": 25.0, "image": _image()}, "guidance_scale 25.0"),
]


@pytest.mark.parametrize(("kwargs", "fragment"), [c[1:] for c in EDIT_CASES], ids=[c[0] for c in EDIT_CASES])
def test_edit_refuses_bad_input_in_one_line_before_any_request(
    pack: ModuleType, pack_env: Emulator, monkeypatch: pytest.MonkeyPatch, kwargs: Any, fragment: str
) -> None:
    args = dict(kwargs(pack, monkeypatch))
    prompt = args.pop("prompt", "edit it")
    with pytest.raises(pack.wavespeed.core.errors.InvalidRequestError) as info:
        asyncio.run(_edit(prompt, **args))
    assert fragment in str(info.value) and "\n" not in str(info.value)
    assert pack_env.requests == [] and pack_env.uploads == [] and pack_env.submissions == 0


MULTI_CASES: list[tuple[str, Any, str]] = [
    ("nothing", {}, "No reference images"),
    ("six in batches", {"image_1": _image(batch=4), "image_5": _image(batch=2)}, "6 reference images"),
    (
        "five images and a url",
        {**{f"image_{n}": _image(seed=n) for n in range(1, 6)}, "image_urls": "https://example.com/x.png"},
        "6 reference images",
    ),
    ("six urls", {"image_urls": "\n".join(f"https://example.com/{n}.png" for n in range(6))}, "6 reference"),
    ("empty batch", {"image_1": _image(), "image_2": torch.zeros(0, 96, 96, 3)}, "image_2 is an empty batch"),
    ("small in batch", {"image_3": _image(40, 96)}, "image_3 is 96x40 px"),
    (
        "bad url line",
        {"image_1": _image(), "image_urls": "https://ok.example/a.png\nnope"},
        "image_urls line 2",
    ),
]


@pytest.mark.parametrize(
    ("kwargs", "fragment"), [c[1:] for c in MULTI_CASES], ids=[c[0] for c in MULTI_CASES]
)
def test_multi_refuses_bad_input_in_one_line_before_any_request(
    pack: ModuleType, pack_env: Emulator, kwargs: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(pack.wavespeed.core.errors.InvalidRequestError) as info:
        asyncio.run(_multi(**kwargs))
    assert fragment in str(info.value) and "\n" not in str(info.value)
    assert pack_env.requests == [] and pack_env.uploads == [] and pack_env.submissions == 0


def test_png_is_reencoded_smaller_before_refusing(pack: ModuleType) -> None:
    uploads = pack.wavespeed.net.reference_uploads
    smooth = torch.linspace(0, 1, 256).repeat(256, 1)[None, ..., None].expand(1, 256, 256, 3).contiguous()
    fast = uploads.prepare(smooth, 0, "image").png
    small = uploads.prepare(smooth, 0, "image", max_bytes=len(fast) - 1)
    assert len(small.png) < len(fast)
    np.testing.assert_array_equal(_decode(small.png)[0], _u8(smooth))


def test_requeued_image_edit_after_a_restart_reuses_the_task(pack: ModuleType, pack_env: Emulator) -> None:
    """Regression: the journal keyed edits by the per-upload URL, so after a restart (new upload,
    new URL) the same image and seed paid for a second task. Uploaded images now count by content."""
    image = _image(seed=11)
    first, _ = asyncio.run(_edit("restart me", image=image))
    asyncio.run(call("WaveSpeedPollResult", 60, "pass through", task=first))

    pack.wavespeed.tasks.paid.submit.reset_session_state()  # as after a ComfyUI restart:
    pack.wavespeed.net.reference_uploads.CACHE.clear()  # nothing in memory survives

    again, _ = asyncio.run(_edit("restart me", image=image))
    assert again.request_id == first.request_id
    assert pack_env.submissions == 1 and len(pack_env.uploads) == 2  # uploaded again, not paid again
    other, _ = asyncio.run(_edit("restart me", image=_image(seed=12)))
    assert other.request_id != first.request_id and pack_env.submissions == 2
