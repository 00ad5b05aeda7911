"""Paid tasks whose journal write failed: kept in memory, and written again until the journal takes them.

Once WaveSpeed accepted a POST the task is paid, so its row must reach the journal. When that write
fails (another process holds the journal's write lock past its wait, a full disk, a file moved
aside), the request id stays here and in the node's output; one daemon thread writes it again every
``RETRY_S`` until it lands (the intent goes in the same transaction), and an identical re-queue in
this process reuses the task from here at once, journal or not. A process that exits first loses
only this memory: its claim then looks interrupted to the next process, which asks the history.

A failed release of a claim that paid nothing (or may have) is kept the same way, so a re-queue
never meets a claim of its own that nobody holds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ...journal.task_journal import Journal, TaskTakenError
from ..handle import TaskHandle

log = logging.getLogger("wavespeed")

RETRY_S = 2.0

Key = tuple[str, str, str]  # (journal label, account, inputs' identity): the single-flight key


def key_of(journal: Journal, account: str, identity: str) -> Key:
    return (journal.label, account, identity)


@dataclass
class Pending:
    """A journal write this process still owes: the task it records (None: an intent's release)."""

    write: Callable[[], object]
    task: TaskHandle | None = None


class Unrecorded:
    """The writes owed, by single-flight key and task id ("" for a release), and the thread that
    keeps trying them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owed: dict[tuple[Key, str], Pending] = {}
        self._thread: threading.Thread | None = None

    def keep(self, key: Key, write: Callable[[], object], task: TaskHandle | None = None) -> None:
        """Owe ``write`` (a paid ``task``'s row, or a release) until it lands."""
        with self._lock:
            self._owed[(key, task.request_id if task is not None else "")] = Pending(write, task)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="wavespeed-journal-retry", daemon=True)
                self._thread.start()

    def task(self, key: Key) -> TaskHandle | None:
        """The newest paid task owed for ``key``, if any (a re-queue reuses it)."""
        with self._lock:
            tasks = [p.task for (k, _), p in self._owed.items() if k == key and p.task is not None]
        return max(tasks, key=lambda t: t.submitted_at) if tasks else None

    def land(self, key: Key) -> None:
        """Try the writes owed for ``key`` now. Raises what the journal raised (they stay owed)."""
        with self._lock:
            owed = [(slot, p) for slot, p in self._owed.items() if slot[0] == key]
        for slot, pending in owed:
            self._attempt(slot, pending, quiet=False)

    def clear(self) -> None:
        with self._lock:
            self._owed.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._owed)

    def _attempt(self, slot: tuple[Key, str], pending: Pending, *, quiet: bool) -> None:
        try:
            pending.write()
        except TaskTakenError as exc:  # never retried: the journal holds that id for other inputs
            log.warning("WaveSpeed journal: %s", exc)
        except Exception:
            if quiet:
                return
            raise
        with self._lock:
            if self._owed.get(slot) is pending:
                del self._owed[slot]
        if pending.task is not None:
            log.info("WaveSpeed journal: task %s is journaled now", pending.task.request_id)

    def _run(self) -> None:
        while True:
            time.sleep(RETRY_S)
            with self._lock:
                owed = list(self._owed.items())
                if not owed:
                    self._thread = None
                    return
            for slot, pending in owed:
                self._attempt(slot, pending, quiet=True)


UNRECORDED = Unrecorded()
