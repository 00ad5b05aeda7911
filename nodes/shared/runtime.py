"""Shared machinery of the node layer: one client per key, blocking I/O off the event loop.

ComfyUI 0.3.75 awaits ``async def`` node functions and runs independent ones concurrently, so
every blocking call (HTTP, decode) goes to a dedicated thread pool (the default executor has only
cpu+4 threads, which would serialise 8 chains on a 2-core machine). The event loop side watches
the Cancel flag every 0.1 s and updates the progress bar, so Cancel is honoured even while a
worker thread sits in a socket read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ...wavespeed import CancelCheck, errors as E
from . import comfy_bridge as bridge

if TYPE_CHECKING:
    import asyncio

    from ...wavespeed import WaveSpeedClient

T = TypeVar("T")

PACK_DIR = Path(__file__).resolve().parents[2]  # the pack's folder: nodes/shared/ is two below it
PACK_KEY_FILE = PACK_DIR / "wavespeed_api_key.txt"
_WATCH_INTERVAL_S = 0.1

_executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="wavespeed")
_clients: dict[str, WaveSpeedClient] = {}  # by account tag
_clients_lock = threading.Lock()


def get_client() -> WaveSpeedClient:
    """The pooled client for the current key and base URL (read from the environment each time,
    so a key set after start-up works without restarting ComfyUI)."""
    from ...wavespeed import WaveSpeedClient, account_tag_for, load_settings

    settings = load_settings(extra_files=[PACK_KEY_FILE])
    account = account_tag_for(settings.base_url, settings.api_key)  # the client's own account_tag
    with _clients_lock:
        client = _clients.get(account)
        if client is None:
            client = _clients[account] = WaveSpeedClient(settings.api_key, settings.base_url)
        return client


class Watch:
    """What the worker thread last saw, published to the UI by the event loop."""

    def __init__(self, progress: bridge.NodeProgress | None = None) -> None:
        self.progress = progress
        self.fraction = 0.0
        self.text: str | None = None
        self.request_id: str | None = None

    def set(self, fraction: float, text: str | None = None) -> None:
        self.fraction, self.text = fraction, text

    def publish(self) -> None:
        if self.progress is not None:
            self.progress.update(self.fraction, self.text)


async def run_blocking(fn: Callable[[CancelCheck], T], *, watch: Watch | None = None) -> T:
    """Run ``fn(cancel)`` in the pool; raise as ComfyUI expects as soon as Cancel is pressed."""
    epoch = bridge.current_epoch()
    stop = threading.Event()

    def cancel() -> bool:
        return stop.is_set() or bridge.interrupted(epoch)

    import asyncio  # imported on first use: keeps the pack's import under 50 ms in a fresh interpreter

    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(_executor, fn, cancel)
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
