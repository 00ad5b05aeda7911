"""Single-flight: identical fixed-seed submits share one paid task, within a process and across processes.

* In a process, ``Flights`` lets the first of several identical submits (same journal, account and
  input identity) lead; the others wait for its outcome and get the same task at no charge.
* Across processes, the journal's intent row is the lock: ``acquire`` claims it in one
  ``BEGIN IMMEDIATE`` transaction (or finds a reusable task, or someone else's intent). A live
  intent is waited on, cancellably and up to a deadline, until the owner's transaction replaces it
  with the task's row. An intent whose owner is gone (its pid is dead on this host and boot, or its
  lease was not renewed) and that never got a task is an interrupted submit that may have been paid:
  the caller looks for it in the history, or says so in one line; it is never paid again silently.

Liveness: the owner renews the lease of its intents every ``RENEW_S`` from one daemon thread (a
long sync-mode POST keeps it renewed), so a frozen process, or one that died where its pid cannot
be checked (another container: another hostname, or another PID namespace), goes stale after
``LEASE_S``; on this host, boot and PID namespace a dead pid is stale at once (kill -9 is seen immediately), and so is a pid that now belongs to
another process: the owner token records its process's start (Linux: boot-clock ticks from /proc,
immune to wall-clock jumps; elsewhere psutil's create_time), and a live process with another start
is not the owner. The lease is on the journal's clock (``Journal.now``: this machine's wall clock
for the SQLite file, the database server's for a farm's PostgreSQL journal, so workers whose clocks
disagree judge a lease alike); another host's owner is judged by its lease alone, never its pid. A
lease further ahead than ``LEASE_S`` (the clock jumped back, or was written by a clock ahead) is
stale unless its owner is seen alive, so a clock jump never blocks a re-queue for the whole wait. A clock jump may make a live intent look stale,
which leads to the history search or the one-line error, never to a second payment.

Processes are probed without Linux-only calls where they do not exist: on Windows ``os.kill(pid, 0)``
would send CTRL_C_EVENT, so psutil (a ComfyUI dependency) or ``OpenProcess`` answers instead.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

from ..core import errors as E
from ..core.vocabulary import CancelCheck
from .rows import BOOT_ID
from .task_journal import Journal
from .task_records import Intent, TaskRecord

T = TypeVar("T")

LEASE_S = 30.0
RENEW_S = 5.0
CLOCK_SLACK_S = RENEW_S  # how far ahead of ours another clock may write a fresh lease
POLL_S = 0.2
STATE_SUBMITTING = "submitting"
STATE_UNCERTAIN = "uncertain"
PROC = Path("/proc")  # Linux only; elsewhere (or without /proc) psutil tells a process's start

_NODE = os.uname().nodename if hasattr(os, "uname") else os.environ.get("COMPUTERNAME", "")


def pid_namespace(proc: Path = PROC) -> str:
    """This process's PID namespace (Linux: ``pid:[4026531836]``), "" where there is none to read.
    Containers on one machine may share its hostname and boot id (host networking) and still number
    their processes apart: a pid names a process only within its namespace."""
    try:
        return os.readlink(proc / "self" / "ns" / "pid")
    except (OSError, AttributeError):
        return ""


# A pid is only meaningful on the same machine, boot and PID namespace: an owner elsewhere is judged
# by its lease alone.
HOST = f"{_NODE}/{BOOT_ID}/{pid_namespace()}"


# ---------------------------------------------------------------------- in-process


class Flight(Generic[T]):
    """The outcome of one leader's submit, awaited by its followers."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None
        self.followers = 0

    def finish(self, result: T | None = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self._done.set()

    def outcome(self, cancel: CancelCheck) -> tuple[T | None, BaseException | None]:
        """Block until the leader finished (CancelledError if *we* are cancelled): (result, error)."""
        while not self._done.wait(0.05):
            if cancel():
                raise E.CancelledError("Cancelled while waiting for an identical task to be submitted.")
        return self.result, self.error


class Flights(Generic[T]):
    """The submits in flight in this process, by key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[tuple[str, ...], Flight[T]] = {}

    def join(self, key: tuple[str, ...]) -> tuple[Flight[T], bool]:
        """The flight for ``key`` and whether the caller leads it (it must then call ``land``)."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                flight.followers += 1
                return flight, False
            flight = self._flights[key] = Flight()
            return flight, True

    def land(self, key: tuple[str, ...], flight: Flight[T]) -> None:
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]

    def clear(self) -> None:
        with self._lock:
            self._flights.clear()


# ---------------------------------------------------------------------- across processes


def process_start(pid: int) -> str:
    """When process ``pid`` started, as a token to compare ("" when it cannot be told): ``b`` + its
    start in boot-clock ticks from /proc (Linux), else ``c`` + psutil's create_time."""
    try:
        stat = (PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
        return "b" + stat.rsplit(")", 1)[1].split()[19]  # field 22, starttime (after "pid (comm)")
    except (OSError, IndexError):
        pass
    try:
        import psutil

        return f"c{psutil.Process(pid).create_time():.3f}"
    except Exception:  # no psutil, no such process, access denied: cannot tell
        return ""


def _new_owner() -> str:
    """A random token per process, with its start: a reused pid is told apart from the owner."""
    return f"{os.urandom(16).hex()}@{process_start(os.getpid())}"


OWNER = _new_owner()  # this process


def _after_fork() -> None:
    global OWNER
    OWNER = _new_owner()  # a forked child is another owner


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _windows_pid_alive(pid: int) -> bool:
    """OpenProcess + GetExitCodeProcess (never ``os.kill(pid, 0)``: CTRL_C_EVENT on Windows)."""
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return bool(ctypes.get_last_error() == 5)  # type: ignore[attr-defined,unused-ignore]  # ACCESS_DENIED: it exists
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True  # cannot tell: count it alive
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def pid_alive(pid: int) -> bool:
    """Does process ``pid`` exist (True when it cannot be told)? psutil where importable, else
    ``os.kill(pid, 0)`` on POSIX and OpenProcess on Windows."""
    if pid <= 0:
        return False
    try:
        import psutil

        return bool(psutil.pid_exists(pid))
    except ImportError:
        pass
    if os.name == "nt":
        try:
            return _windows_pid_alive(pid)
        except (OSError, AttributeError):
            return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's), or we cannot tell: count it alive
    return True


def same_process(pid: int, owner: str) -> bool | None:
    """Is the owner of an intent on this host and boot still running? False when its pid is gone or
    now belongs to a process started at another time; None when that cannot be told."""
    if not pid_alive(pid):
        return False
    recorded = owner.partition("@")[2]  # "" in rows written before the token held the start
    current = process_start(pid) if recorded else ""
    if not current or current[0] != recorded[0]:
        return None
    return current == recorded


def owner_alive(intent: Intent, now: float | None = None) -> bool:
    """Is someone still submitting under this intent? One of this process's own is alive only while
    a submit here holds it (LEASES): a claim left behind by an earlier submit of this process (its
    journal write failed) is never waited on."""
    if intent.state != STATE_SUBMITTING:
        return False
    if intent.owner == OWNER:
        return LEASES.holds(intent.account, intent.identity)
    now = time.time() if now is None else now
    if intent.host == HOST:
        same = same_process(intent.pid, intent.owner)
        if same is not None:  # seen: a live owner pulls a far lease back within RENEW_S
            return same and intent.lease_until >= now
    return now <= intent.lease_until <= now + LEASE_S + CLOCK_SLACK_S


def new_intent(
    account: str, identity: str, model: str, payload_hash: str, payload: Mapping[str, Any] | None = None
) -> Intent:
    """This process's claim on (account, identity), keeping the payload it is about to send."""
    now = time.time()
    return Intent(
        account=account,
        identity=identity,
        model=model,
        payload_hash=payload_hash,
        claimed_at=now,
        host=HOST,
        pid=os.getpid(),
        owner=OWNER,
        lease_until=now + LEASE_S,
        state=STATE_SUBMITTING,
        payload=None if payload is None else dict(payload),
    )


def acquire(
    journal: Journal,
    intent: Intent,
    *,
    max_age_s: float | None,
    reuse_statuses: Iterable[str],
    deadline: float,
    cancel: CancelCheck,
    on_wait: Callable[[Intent], None] | None = None,
) -> TaskRecord | Intent | None:
    """A reusable task (TaskRecord), a stale intent to recover (Intent), or None: the intent is ours,
    POST now (and ``LEASES.release`` it when done). Waits while another live process holds it."""
    statuses = tuple(reuse_statuses)
    while True:
        got = journal.claim_intent(intent, max_age_s=max_age_s, reuse_statuses=statuses)
        if got is None:
            LEASES.hold(journal, intent.account, intent.identity)
            return None
        if isinstance(got, TaskRecord) or not owner_alive(got, journal.clock()):
            return got
        if on_wait is not None:
            on_wait(got)
        if cancel():
            raise E.CancelledError("Cancelled while another ComfyUI was submitting an identical task.")
        if time.monotonic() >= deadline:
            raise E.WaitTimeoutError(
                f"Another ComfyUI (pid {got.pid}) is still submitting an identical task since "
                f"{clock_text(got.claimed_at)}: queue again in a moment to reuse it, or turn on "
                "force_rerun to pay for a second one."
            )
        time.sleep(POLL_S)


def clock_text(epoch: float) -> str:
    return time.strftime("%H:%M", time.localtime(epoch)) if epoch > 0 else "an unknown time"


def interrupted_message(intent: Intent) -> str:
    """The one line for an interrupted submit that may have been paid and was not found."""
    when = clock_text(intent.claimed_at)
    if intent.state == STATE_UNCERTAIN:
        how = f"at {when} but the connection broke before WaveSpeed answered"
    else:
        how = f"when ComfyUI stopped at {when}"
    return (
        f"An identical task was being submitted {how} and may have been paid: check your WaveSpeed "
        "history, or turn on force_rerun to pay again."
    )


class LeaseKeeper:
    """One daemon thread renewing the leases of the intents this process's submits hold (and only
    those: a claim left behind by a finished submit goes stale like a dead process's)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[Journal, dict[tuple[str, str], int]] = {}
        self._thread: threading.Thread | None = None

    def hold(self, journal: Journal, account: str, identity: str) -> None:
        with self._lock:
            keys = self._held.setdefault(journal, {})
            keys[(account, identity)] = keys.get((account, identity), 0) + 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="wavespeed-lease", daemon=True)
                self._thread.start()

    def release(self, journal: Journal, account: str, identity: str) -> None:
        with self._lock:
            keys = self._held.get(journal, {})
            count = keys.get((account, identity), 0) - 1
            if count > 0:
                keys[(account, identity)] = count
            else:
                keys.pop((account, identity), None)
            if not keys:
                self._held.pop(journal, None)

    def holds(self, account: str, identity: str) -> bool:
        """Does a submit of this process hold the intent for (account, identity) right now?"""
        with self._lock:
            return any((account, identity) in keys for keys in self._held.values())

    def _run(self) -> None:
        while True:
            time.sleep(RENEW_S)
            with self._lock:
                held = [(journal, list(keys)) for journal, keys in self._held.items()]
                if not held:
                    self._thread = None
                    return
            for journal, keys in held:
                try:
                    journal.renew_intents(OWNER, LEASE_S, keys)
                except Exception:  # a busy or broken journal: the next round tries again
                    continue


LEASES = LeaseKeeper()
