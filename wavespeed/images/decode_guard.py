"""Decoding under a deadline and Cancel: the caller gets an answer in time, whatever the C decoder does.

A decode runs in libjpeg, libpng or libwebp; once inside, nothing in Python can stop it. So the
decode runs in a worker thread of its own and the caller waits for it in short slices, asking
Cancel and the clock: at the deadline or on Cancel the caller gets its error at once, and the
worker's result is dropped when it ends. What keeps that worker from running on is the codec's
bound on the work itself (codec.py: the three formats WaveSpeed serves, in process; the pixel
limit and the JPEG scan limit checked before any pixel is decoded), so an abandoned decode ends
within about a second of CPU at the largest size allowed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from ..core.errors import CancelledError, WaitTimeoutError
from ..core.vocabulary import CancelCheck

T = TypeVar("T")

SLICE_S = 0.05  # how often the waiting caller asks Cancel
THREAD_NAME = "wavespeed-decode"


class _Outcome(Generic[T]):
    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None


def decode_before(fn: Callable[[], T], *, deadline: float, cancel: CancelCheck, request_id: str) -> T:
    """``fn()`` (a decode), or an error as soon as ``deadline`` (``time.monotonic()``) passes or
    ``cancel()`` turns true, while ``fn`` may still be running.

    Raises:
        WaitTimeoutError / CancelledError: naming task ``request_id``; the decode's result is dropped.
        Whatever ``fn`` raised, when it ended first.
    """
    if cancel():
        raise CancelledError("Cancelled before decoding the outputs.", request_id=request_id)
    if time.monotonic() >= deadline:
        raise _late(request_id)
    outcome: _Outcome[T] = _Outcome()

    def work() -> None:
        try:
            outcome.value = fn()
        except BaseException as exc:  # handed to the caller, or dropped with the result
            outcome.error = exc
        finally:
            outcome.done.set()

    threading.Thread(target=work, name=THREAD_NAME, daemon=True).start()
    while not outcome.done.wait(max(0.0, min(SLICE_S, deadline - time.monotonic()))):
        if cancel():
            raise CancelledError("Cancelled while decoding the outputs.", request_id=request_id)
        if time.monotonic() >= deadline:
            raise _late(request_id)
    if outcome.error is not None:
        raise outcome.error
    return outcome.value  # type: ignore[return-value]  # set when no error


def _late(request_id: str) -> WaitTimeoutError:
    return WaitTimeoutError(
        "Timed out decoding the outputs by the node's timeout_s; the task is done and paid",
        request_id=request_id,
    )
