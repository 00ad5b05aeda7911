"""WaveSpeed's pace for checks of one task, held in one place every ``/result`` goes through.

Decisions, and why:

* **At least 2 s between two checks of one task** (WaveSpeed's published "Task Result Polling
  Frequency", WAVESPEED_API.md 13.1), counted from the END of one check (its reply read, or its
  failure) to the START of the next: however long a request takes to reach the server, the server
  never sees two closer. Checks of one task queue behind each other; checks of different tasks never
  wait for each other. The client reads every ``/result`` through ``turn``, retries included, so
  the pace holds by structure whoever asks (Poll Result, Batch, the reuse check, recovery).
* **A throttled check slows its task down.** A server stricter than its published pace answers
  429; the next check of that task then waits twice as long as the last gap (2, 4, 8 ... up to
  ``MAX_GAP_S``), and the first check that is not throttled brings the task back to the published
  pace. Without this a server enforcing 3 s would refuse every 2 s check until retries ran out.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator

from ..api.kontext_request import CHECK_GAP_S
from ..api.retry_rule import timeout_error
from ..core.vocabulary import CancelCheck
from .request_loop import CANCEL_SLICE_S, check_cancel, sleep

MAX_GAP_S = 30.0  # the longest a throttled task waits between two checks


class CheckPace:
    """At least ``gap_s`` between two checks of one task (longer after a throttled one), for every
    check the process makes: see the module docstring."""

    def __init__(self, gap_s: float = CHECK_GAP_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.gap_s = gap_s
        self._clock = clock
        self._cond = threading.Condition()
        self._ended: dict[str, float] = {}  # task -> when its last check ended
        self._gaps: dict[str, float] = {}  # task -> its gap while throttled (absent: gap_s)
        self._busy: set[str] = set()  # tasks with a check waiting for its slot or on the wire

    def _gap(self, task: str) -> float:
        return self._gaps.get(task, self.gap_s)

    def ready_at(self, task: str) -> float:
        """The earliest time (``clock``) a new check of ``task`` may start."""
        with self._cond:
            return self._ended.get(task, -math.inf) + self._gap(task)

    def throttled(self, task: str) -> None:
        """The server answered a check of ``task`` 429: its next gap doubles (up to MAX_GAP_S).
        Called within that check's turn, so its end keeps the longer gap (``_end``)."""
        with self._cond:
            self._gaps[task] = min(MAX_GAP_S, 2.0 * self._gap(task))

    @contextlib.contextmanager
    def turn(
        self, task: str, *, cancel: CancelCheck | None, deadline: float | None, request_id: str | None
    ) -> Iterator[None]:
        """Wait for ``task``'s turn (Cancel and the deadline are seen within CANCEL_SLICE_S; a turn
        that would come after the deadline raises WaitTimeoutError at once, nothing sent), run the
        block (one check), and record when it ended."""
        with self._cond:
            while task in self._busy:
                check_cancel(cancel, request_id)
                if deadline is not None and self._clock() >= deadline:
                    raise timeout_error(request_id)
                self._cond.wait(CANCEL_SLICE_S)
            self._busy.add(task)
            gap = self._gap(task)
            at = self._ended.get(task, -math.inf) + gap
        started = False
        try:
            wait_s = at - self._clock()
            if wait_s > 0:
                if deadline is not None and at > deadline:
                    raise timeout_error(request_id)
                sleep(wait_s, cancel=cancel, deadline=deadline, request_id=request_id)
            started = True
            yield
        finally:
            with self._cond:
                self._end(task, started, gap)

    def _end(self, task: str, started: bool, gap: float) -> None:
        """Record a check's end (under the lock): a check that was not throttled brings a slowed
        task back to the published pace; tasks whose gap has passed are forgotten."""
        now = self._clock()
        if started:
            self._ended[task] = now
            if self._gap(task) == gap:  # not throttled during this check
                self._gaps.pop(task, None)
        self._busy.discard(task)
        if len(self._ended) > 256:  # forget tasks whose gap has passed: they constrain nothing
            self._ended = {k: v for k, v in self._ended.items() if v + self._gap(k) > now}
            self._gaps = {k: v for k, v in self._gaps.items() if k in self._ended}
        self._cond.notify_all()


PACE = CheckPace()  # the process's one pace: every client's checks of every task go through it


def check_turn(
    task: str | None, *, cancel: CancelCheck | None, deadline: float | None
) -> contextlib.AbstractContextManager[None]:
    """``PACE.turn`` for a check of ``task``; nothing to wait for when the call checks no task."""
    if task is None:
        return contextlib.nullcontext()
    return PACE.turn(task, cancel=cancel, deadline=deadline, request_id=task)
