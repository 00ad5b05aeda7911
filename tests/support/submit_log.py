"""The order of what the emulator accepted and when Cancel was pressed: a spy on its submits that
presses Cancel right after the n-th accepted one, while later submits may still be on their way."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from emulator import Emulator


@dataclass
class SubmitLog:
    """Lines in order: one per accepted submit (``name(body)``), and "cancel" where Cancel was pressed."""

    events: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cancelled(self) -> None:
        with self.lock:
            self.events.append("cancel")

    def after_cancel(self) -> list[str]:
        """What the emulator accepted after the Cancel (the test fails if Cancel was never pressed)."""
        with self.lock:
            assert "cancel" in self.events, f"Cancel was never pressed: {self.events}"
            return self.events[self.events.index("cancel") + 1 :]


def cancel_after_submits(
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    count: int,
    cancel: Callable[[], None],
    name: Callable[[dict[str, Any]], str] = lambda body: "submit",
) -> SubmitLog:
    """Log ``emulator``'s accepted submits; call ``cancel`` as the ``count``-th is accepted (before
    its reply leaves), so any submit the client starts after the Cancel shows after "cancel"."""
    log = SubmitLog()
    accept = emulator.submit
    accepted = 0

    def submit(model: str, body: dict[str, Any], base_url: str) -> Any:
        nonlocal accepted
        task = accept(model, body, base_url)
        if not isinstance(task, int):  # an int is an HTTP error status: nothing accepted
            with log.lock:
                log.events.append(name(body))
                accepted += 1
                if accepted == count:
                    cancel()
                    log.events.append("cancel")
        return task

    monkeypatch.setattr(emulator, "submit", submit)
    return log
