"""What a task call runs with: the context its host gives it, and Cancel decided once.

A task call (a submit, a wait, a fetch) runs from its start to its end in ONE worker thread,
blocking. What its host knows comes in as plain values and callbacks: the Cancel check, the status
line the call writes and the host shows, the host's user folder (where the journal lives) and the
files the API key may be in. The host is ComfyUI's node layer (nodes/shared/runtime.py makes one
context per worker call), a script, a bench or a test; the task layer never imports ComfyUI.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..core.errors import CancelledError
from ..core.vocabulary import CancelCheck

if TYPE_CHECKING:
    from ..net.client import WaveSpeedClient


class StatusLine(Protocol):
    """Where a task call says what it is doing: set from the worker thread, shown by the host."""

    #: The paid task a Cancel right now would leave running (the host's Cancel line names it).
    request_id: str | None

    def set(self, fraction: float, text: str | None = None) -> None: ...


class Unseen:
    """A status line nobody shows (a script's call, each task of a Batch)."""

    def __init__(self) -> None:
        self.request_id: str | None = None

    def set(self, fraction: float, text: str | None = None) -> None:
        """Nothing to show."""


def never_cancelled() -> bool:
    return False


@dataclass(frozen=True)
class TaskContext:
    """What a task call runs with, given by its host."""

    cancel: CancelCheck = never_cancelled
    status: StatusLine = field(default_factory=Unseen)
    #: The host's user folder: the journal lives there unless WAVESPEED_JOURNAL_DIR names another.
    user_dir: str | None = None
    #: More places the API key may be, after the usual ones (the pack's own key file).
    key_files: tuple[Path, ...] = ()
    #: The client to use; None: the account's pooled client for the current key and base URL.
    client: WaveSpeedClient | None = None
    #: Told each time a submit waits for the account's rate window (a Batch shows it on its line).
    rate_wait: Callable[[str], None] | None = None


class CancelLatch:
    """Cancel, decided once for a submit or a whole batch: once seen, it stays seen.

    ComfyUI clears its interrupt flag as soon as the first node raises; a batch task that starts
    after that would see no Cancel and pay. The host's check remembers when it was made (the node
    layer's compares ComfyUI's Cancel epoch, nodes/shared/comfy_bridge.py); the latch keeps its
    first yes, so every later check says "cancelled"."""

    def __init__(self, check: CancelCheck) -> None:
        self._check = check
        self._latched = threading.Event()

    def __call__(self) -> bool:
        if self._latched.is_set():
            return True
        if self._check():
            self._latched.set()
            return True
        return False

    def latch(self) -> None:
        """Stop every submit that has not started its POST yet (Cancel, or the batch gave up)."""
        self._latched.set()

    def stop_if_set(self) -> None:
        """Raise the Cancel if it was pressed: nothing of this submit was sent."""
        if self():
            raise CancelledError("Cancelled.")
