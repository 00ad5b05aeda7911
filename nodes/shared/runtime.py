"""Shared machinery of the node layer: blocking task calls off the event loop, with what ComfyUI gives.

ComfyUI 0.3.75 awaits ``async def`` node functions and runs independent ones concurrently, so
every blocking call (a submit, a wait, a decode) goes to a dedicated thread pool (the default
executor has only cpu+4 threads, which would serialise 8 chains on a 2-core machine), one worker
thread per call. The call gets a TaskContext (wavespeed/tasks/context.py): ComfyUI's Cancel as a check,
a status line, ComfyUI's user directory and the pack's key file. The event loop side watches the
Cancel flag every 0.1 s and shows the status line's new text on the node, so Cancel is honoured
even while a worker thread sits in a socket read.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ...wavespeed import TaskContext, errors as E
from . import comfy_bridge as bridge

if TYPE_CHECKING:
    import asyncio

T = TypeVar("T")

PACK_DIR = Path(__file__).resolve().parents[2]  # the pack's folder: nodes/shared/ is two below it
PACK_KEY_FILE = PACK_DIR / "wavespeed_api_key.txt"
_WATCH_INTERVAL_S = 0.1

_executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="wavespeed")


class Watch:
    """A task call's status line (TaskContext.status): set by the worker thread, shown on the node
    by the event loop. Every line set is shown, in order (a short step's line is not lost)."""

    def __init__(self, progress: bridge.NodeProgress | None = None) -> None:
        self.progress = progress
        self.request_id: str | None = None
        self._lock = threading.Lock()
        self._lines: list[tuple[float, str | None]] = [(0.0, None)]

    def set(self, fraction: float, text: str | None = None) -> None:
        with self._lock:
            self._lines.append((fraction, text))

    def publish(self) -> None:
        """Show the lines set since the last publish (the latest one again if none was)."""
        with self._lock:
            lines, self._lines = self._lines, self._lines[-1:]
        if self.progress is not None:
            for fraction, text in lines[1:] or lines:
                self.progress.update(fraction, text)


async def run_blocking(fn: Callable[[TaskContext], T], *, watch: Watch | None = None) -> T:
    """Run ``fn(context)`` in the pool; raise as ComfyUI expects as soon as Cancel is pressed."""
    epoch = bridge.current_epoch()
    stop = threading.Event()

    def cancel() -> bool:
        return stop.is_set() or bridge.interrupted(epoch)

    context = TaskContext(cancel=cancel, user_dir=bridge.user_directory(), key_files=(PACK_KEY_FILE,))
    if watch is not None:
        context = dataclasses.replace(context, status=watch)

    import asyncio  # imported on first use: keeps the pack's import under 50 ms in a fresh interpreter

    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(_executor, fn, context)
    try:
        while True:
            done, _ = await asyncio.wait({future}, timeout=_WATCH_INTERVAL_S)
            if watch is not None:
                try:
                    watch.publish()
                except Exception as exc:
                    # ComfyUI's progress hook itself raises on Cancel (and clears the flag)
                    if bridge.is_interrupt(exc):
                        stop.set()
                        bridge.raise_interrupted(watch.request_id)
                    raise
            if done:
                try:
                    return future.result()
                except E.CancelledError as exc:
                    bridge.raise_interrupted(exc.request_id)
                    raise
            if bridge.interrupted(epoch):
                stop.set()
                bridge.raise_interrupted(watch.request_id if watch else None)
    except BaseException:
        stop.set()  # whatever ends us (Cancel, asyncio cancellation), the thread stops soon after
        # Nobody awaits the worker any more: take its outcome when it ends, else asyncio logs
        # "Future exception was never retrieved" with a traceback in the user's console after Cancel.
        # (Anything paid was journaled in the worker itself.)
        future.add_done_callback(_drop_outcome)
        raise


def _drop_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def submit_blocking(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Plain offload without the Cancel watch (short calls like a local file write)."""
    import asyncio

    return asyncio.get_running_loop().run_in_executor(_executor, fn, *args)
