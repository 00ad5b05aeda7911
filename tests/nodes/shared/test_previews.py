"""Images as they arrive (issue 19): Poll Result and Batch put each decoded image on the running node
as a preview, through nodes/shared/comfy_bridge.py only, without a second full-size copy of the image.

A stand-in ``comfy.utils.ProgressBar`` records what ComfyUI's progress hook would receive (the call
KSampler makes: ``update_absolute(value, total, ("JPEG", image, max_size))``); the nodes run against
the emulator over real sockets. The real server's websocket frames are checked in
tests/e2e/test_previews_e2e.py.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import threading
import types
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings, strategies as st

from emulator import Emulator
from scripts.pack_loader import load_pack
from tests.support.node_calls import call


def _bridge(pack: ModuleType) -> Any:
    return importlib.import_module(f"{pack.__name__}.nodes.shared.comfy_bridge")


def _stand_in_progress_bar(monkeypatch: pytest.MonkeyPatch, bar: type) -> None:
    """Make ``bar`` the ``comfy.utils.ProgressBar`` the pack imports (ComfyUI is not imported here)."""
    utils = ModuleType("comfy.utils")
    utils.ProgressBar = bar  # type: ignore[attr-defined]
    comfy = ModuleType("comfy")
    comfy.utils = utils  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "comfy", comfy)
    monkeypatch.setitem(sys.modules, "comfy.utils", utils)


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.SimpleNamespace]:
    """A stand-in for ComfyUI's progress bar; ``on_preview`` runs inside the hook, as ComfyUI's does."""
    state = types.SimpleNamespace(previews=[], texts=[], on_preview=None, lock=threading.Lock())

    class ProgressBar:
        def __init__(self, total: int, node_id: str | None = None) -> None:
            self.total, self.node_id = total, node_id

        def update_absolute(self, value: int, total: int | None = None, preview: Any = None) -> None:
            if preview is not None:
                with state.lock:
                    state.previews.append((self.node_id, value, total, preview))
                if state.on_preview is not None:
                    state.on_preview(preview)

    _stand_in_progress_bar(monkeypatch, ProgressBar)
    yield state


# ------------------------------------------------------------------------------- the preview picture


def _block_means(pixels: np.ndarray, step: int) -> np.ndarray:
    rows, cols = max(1, pixels.shape[0] // step), max(1, pixels.shape[1] // step)
    crop = pixels[: rows * step, : cols * step, :3]
    by, bx = min(step, crop.shape[0]), min(step, crop.shape[1])
    return crop.reshape(rows, by, cols, bx, 3).mean(axis=(1, 3))


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 300),
    width=st.integers(1, 300),
    max_px=st.integers(1, 80),
    seed=st.integers(0, 2**16),
)
@example(height=1, width=300, max_px=7, seed=0)  # thinner than one block
@example(height=2, width=299, max_px=64, seed=1)
def test_the_preview_is_the_box_filtered_image_within_max_px(
    height: int, width: int, max_px: int, seed: int
) -> None:
    pack = load_pack()  # the same module every time (no function-scoped fixture under @given)
    pixels = np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)
    picture = _bridge(pack).preview_image(torch.from_numpy(pixels), max_px=max_px)
    assert picture.mode == "RGB"
    assert 1 <= max(picture.size) <= max_px or (height, width) == (1, 1)
    step = max(1, -(-max(height, width) // max_px))
    expected = np.rint(_block_means(pixels, step) * 255.0)
    assert picture.size == (expected.shape[1], expected.shape[0])
    assert np.abs(np.asarray(picture, dtype=np.float64) - expected).max() <= 1.0


def test_preview_of_a_kontext_output_fits_512_and_keeps_its_shape(pack: ModuleType) -> None:
    bridge = _bridge(pack)
    batch = torch.zeros((1, 1024, 1392, 3))
    batch[0, :, :696, 0] = 1.0  # left half red, right half black
    picture = bridge.preview_image(batch)  # [1,H,W,3] as the nodes hold it
    assert picture.size == (464, 341) and max(picture.size) <= bridge.PREVIEW_MAX_PX
    assert picture.getpixel((10, 10)) == (255, 0, 0) and picture.getpixel((400, 10)) == (0, 0, 0)
    assert bridge.preview_image(np.full((8, 8, 3), 0.5, dtype=np.float32)).getpixel((0, 0)) == (128,) * 3
    with pytest.raises(ValueError, match=r"an \[H,W,3\] image"):
        bridge.preview_image(torch.zeros((4, 4)))


def test_the_preview_takes_no_second_full_size_copy(pack: ModuleType) -> None:
    """Everything allocated while making a preview of a 1024x1392 output is about the preview itself
    (a float accumulator and its bytes, ~2.4 MB), never the 17 MB a pooled copy of the image costs."""
    from torch.profiler import ProfilerActivity, profile

    image = torch.rand((1, 1024, 1392, 3))
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        picture = _bridge(pack).preview_image(image)
    allocated = sum(max(0, e.self_cpu_memory_usage) for e in prof.key_averages())
    preview_floats = picture.size[0] * picture.size[1] * 3 * 4
    full_copy = image.numel() * 4
    assert 0 < allocated <= 1.5 * preview_floats < full_copy / 5, (allocated, preview_floats)


def test_outside_comfyui_a_preview_is_a_no_op(pack: ModuleType) -> None:
    progress = _bridge(pack).NodeProgress(None)
    progress.preview(torch.zeros((1, 8, 8, 3)))  # no ComfyUI, no node: nothing to show, no error


def test_a_failing_preview_never_breaks_the_task(pack: ModuleType, hook: types.SimpleNamespace) -> None:
    def broken(preview: Any) -> None:
        raise RuntimeError("websocket gone")

    hook.on_preview = broken
    progress = _bridge(pack).NodeProgress("5")
    progress.preview(torch.zeros((1, 8, 8, 3)))  # raises nothing
    progress.preview(torch.zeros((8, 8)))  # not an image: logged, not raised
    assert len(hook.previews) == 1


# ----------------------------------------------------------------------------------------- the nodes


def test_poll_result_shows_the_image_on_its_node(
    pack: ModuleType, pack_env: Emulator, hook: types.SimpleNamespace
) -> None:

    async def scenario() -> Any:
        task, _ = await call(
            "FluxKontextMaxGenerate", "a preview please", 7, 3.5, "1:1", False, unique_id="3"
        )
        return await call("WaveSpeedPollResult", 600, "pass through", task=task, unique_id="4")

    images, *_ = asyncio.run(scenario())
    # max_size None: ComfyUI would otherwise enlarge a smaller picture to fit it (ImageOps.contain)
    assert [(node, kind, size) for node, _, _, (kind, _, size) in hook.previews] == [("4", "JPEG", None)]
    picture = hook.previews[0][3][1]
    assert max(picture.size) <= 512
    expected = _bridge(pack).preview_image(images[0])
    assert np.array_equal(np.asarray(picture), np.asarray(expected))
    assert np.asarray(picture).std() > 1  # the emulator's picture, not a blank


def test_batch_shows_each_image_as_it_arrives_and_counts_them(
    pack: ModuleType, pack_env: Emulator, hook: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first image is on the node while the other three tasks are still running (they are held
    until then), and the status line counts the images in hand and their price."""
    bridge = _bridge(pack)
    texts: list[str] = []
    monkeypatch.setattr(bridge, "send_status", lambda node_id, text: texts.append(text))
    pack_env.next_tasks(1, inference_s=0.1)
    pack_env.next_tasks(3, never_finish=True)
    still_running: list[int] = []

    def first_preview_releases_the_rest(preview: Any) -> None:
        held = [t for t in pack_env.history() if t.never_finish]
        if not still_running:
            still_running.append(len(held))
        for task in held:
            task.inference_s, task.never_finish = 0.0, False

    hook.on_preview = first_preview_releases_the_rest
    images, _, ids, failures = asyncio.run(
        # held tasks that nobody releases (no preview) time out: the test fails instead of hanging
        call("FluxKontextMaxBatch", "a red fox\na blue jay", 2, 11, 3.5, "1:1", timeout_s=20, unique_id="9")
    )
    assert failures == "" and images.shape[0] == 4
    assert still_running == [3]
    assert len(hook.previews) == 4 and {p[0] for p in hook.previews} == {"9"}
    shown = sorted(np.asarray(p[3][1]).tobytes() for p in hook.previews)
    assert shown == sorted(np.asarray(bridge.preview_image(img)).tobytes() for img in images)
    counts = [t for t in texts if " done, $" in t]
    assert "1/4 done, $0.08 so far" in counts and "3/4 done, $0.24 so far" in counts
    assert counts.index("1/4 done, $0.08 so far") < counts.index("3/4 done, $0.24 so far")


def test_batch_status_line(pack: ModuleType) -> None:
    status = pack.nodes.batch.batch_status
    assert status(7, 0, 24, 0.56) == "7/24 done, $0.56 so far"
    assert status(3, 1, 4, 0.24) == "3/4 done, $0.24 so far, 1 failed"
    assert status(0, 0, 85, 0.0) == "0/85 done, $0.00 so far"


def test_a_reused_task_adds_nothing_to_the_price_so_far(pack: ModuleType) -> None:
    batch = pack.nodes.batch
    handle = importlib.import_module(f"{pack.__name__}.wavespeed.tasks.handle").TaskHandle
    paid, reused = handle("a", "m", price_usd=0.08), handle("b", "m", price_usd=0.0)
    waiting = handle("c", "m", price_usd=0.08)
    done = object()
    results = [(paid, done, None), (reused, done, None), (waiting, None, None), (None, None, ValueError())]
    assert batch._spent_usd(results) == pytest.approx(0.08)


def test_a_progress_value_comfyui_throttled_after_a_preview_is_sent_again(
    pack: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ComfyUI 0.33.0's ProgressBar drops an update within 0.1 s of the previous one (a preview is
    always sent) and remembers what it last sent. Seen in the browser: after the first image of a
    batch the bar stayed at 5 % while the status read 1/4 done. The next publish sends it again."""
    clock = types.SimpleNamespace(now=0.0)
    sent: list[int] = []

    class ThrottledBar:  # comfy/utils.py of ComfyUI 0.33.0, with a clock the test moves
        def __init__(self, total: int, node_id: str | None = None) -> None:
            self.total, self._last_sent_value, self._last_update_time = total, -1, 0.0

        def update_absolute(self, value: int, total: int | None = None, preview: Any = None) -> None:
            first, final = self._last_sent_value < 0, value >= self.total
            elapsed = clock.now - self._last_update_time
            if preview is not None or first or final or elapsed >= 0.1:
                sent.append(value)
                self._last_update_time, self._last_sent_value = clock.now, value

    _stand_in_progress_bar(monkeypatch, ThrottledBar)
    monkeypatch.setattr(_bridge(pack), "send_status", lambda node_id, text: None)

    progress = _bridge(pack).NodeProgress("9")
    progress.update(0.05, "0/4 done")
    clock.now = 1.0
    progress.preview(torch.zeros((1, 8, 8, 3)))  # the first image: sent at once
    progress.update(0.275, "1/4 done")  # right after it: ComfyUI drops this one
    assert sent == [5, 5]
    clock.now = 1.25
    progress.update(0.275, "1/4 done")  # Batch's next publish (it repeats every 0.25 s)
    assert sent == [5, 5, 28]
    progress.update(0.275, "1/4 done")
    assert sent == [5, 5, 28]  # once ComfyUI has it, nothing more is sent


def test_cancel_raised_while_showing_a_preview_stops_the_node(
    pack: ModuleType, hook: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ComfyUI's progress hook raises InterruptProcessingException when Cancel was pressed, also on a
    preview: that is the Cancel itself, so it propagates and every sibling wait stops (epoch)."""

    class InterruptProcessingException(Exception):
        pass

    mm = ModuleType("comfy.model_management")
    mm.InterruptProcessingException = InterruptProcessingException  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "comfy.model_management", mm)

    def cancel_pressed(preview: Any) -> None:
        raise InterruptProcessingException()

    hook.on_preview = cancel_pressed
    bridge = _bridge(pack)
    epoch = bridge.current_epoch()
    with pytest.raises(InterruptProcessingException):
        bridge.NodeProgress("5").preview(torch.zeros((1, 8, 8, 3)))
    assert bridge.interrupted(epoch)
