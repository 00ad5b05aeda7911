"""Regression: ComfyUI's progress hook raises InterruptProcessingException and clears the flag.

Seen in CI under load: our progress update swallowed that exception, the flag was gone, and the
wait ran on until its timeout. Here a stand-in ``comfy`` package reproduces exactly what ComfyUI
0.3.75 does (main.py's hook calls throw_exception_if_processing_interrupted() on every update);
the real server path is covered by tests/e2e/test_pack_e2e.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import threading
import time
import types
from collections.abc import Iterator
from types import ModuleType

import pytest

from emulator import Emulator
from tests.support.node_calls import call


class InterruptProcessingException(Exception):
    pass


@pytest.fixture
def fake_comfy(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.SimpleNamespace]:
    state = types.SimpleNamespace(interrupted=False, updates=0)
    mm = ModuleType("comfy.model_management")
    mm.InterruptProcessingException = InterruptProcessingException  # type: ignore[attr-defined]

    def throw_exception_if_processing_interrupted() -> None:
        if state.interrupted:
            state.interrupted = False
            raise InterruptProcessingException()

    def interrupt_current_processing(value: bool = True) -> None:
        state.interrupted = value

    mm.processing_interrupted = lambda: state.interrupted  # type: ignore[attr-defined]
    mm.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted  # type: ignore[attr-defined]
    mm.interrupt_current_processing = interrupt_current_processing  # type: ignore[attr-defined]

    class ProgressBar:
        def __init__(self, total: int, node_id: str | None = None) -> None:
            self.total = total

        def update_absolute(self, value: int, total: int | None = None) -> None:
            state.updates += 1
            throw_exception_if_processing_interrupted()  # what ComfyUI's hook does

    utils = ModuleType("comfy.utils")
    utils.ProgressBar = ProgressBar  # type: ignore[attr-defined]
    comfy = ModuleType("comfy")
    comfy.model_management = mm  # type: ignore[attr-defined]
    comfy.utils = utils  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "comfy", comfy)
    monkeypatch.setitem(sys.modules, "comfy.model_management", mm)
    monkeypatch.setitem(sys.modules, "comfy.utils", utils)
    yield state


def test_interrupt_raised_by_the_progress_hook_stops_the_wait(
    pack: ModuleType, pack_env: Emulator, fake_comfy: types.SimpleNamespace
) -> None:
    pack_env.next_tasks(never_finish=True)

    async def scenario() -> tuple[float, BaseException | None]:
        task, _ = await call("FluxKontextMaxGenerate", "hook interrupt", 1, 3.5, "1:1", False, unique_id="7")
        waiting = asyncio.ensure_future(
            call("WaveSpeedPollResult", 600, "pass through", task=task, unique_id="8")
        )
        await asyncio.sleep(0.6)
        pressed = time.monotonic()
        fake_comfy.interrupted = True  # POST /interrupt
        try:
            await asyncio.wait_for(waiting, timeout=5)
        except BaseException as exc:  # noqa: BLE001 - the exception is what we check
            return time.monotonic() - pressed, exc
        return time.monotonic() - pressed, None

    latency, exc = asyncio.run(scenario())
    assert isinstance(exc, InterruptProcessingException), exc
    assert latency < 1.0
    assert fake_comfy.updates > 0


def test_a_cancelled_wait_leaves_no_never_retrieved_future_in_the_log(pack: ModuleType) -> None:
    """Regression: after Cancel, the worker's late error was never retrieved, and asyncio logged
    "Future exception was never retrieved" with a traceback (seen in this suite's logs; in ComfyUI,
    the user's console after every Cancel)."""
    runtime = pack.nodes.shared.runtime
    release, ended = threading.Event(), threading.Event()
    seen: list[str] = []

    def work(cancel: object) -> None:
        release.wait(10)
        ended.set()
        raise pack.wavespeed.errors.CancelledError("stopped after Cancel")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: seen.append(str(context.get("message"))))
        waiting = asyncio.ensure_future(runtime.run_blocking(work))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        release.set()
        await loop.run_in_executor(None, ended.wait, 10)
        for _ in range(50):  # let the loop take the worker's outcome, then collect the dropped future
            await asyncio.sleep(0.01)
            gc.collect()

    asyncio.run(main())
    assert not [m for m in seen if "never retrieved" in m], seen
