"""The intent row (cross-process single-flight) on a real SQLite file: a live claim is waited on
until its owner records the task, a dead or silent owner's claim is handed back as interrupted,
waiting is bounded and cancellable, and the history lookup reads the API's timestamps."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

STATUSES = ("completed", "in_flight")


def _journal(pack: ModuleType, tmp_path: Path) -> Any:
    return pack.wavespeed.journal.task_journal.Journal(tmp_path / "j")


def _other(pack: ModuleType, **changes: Any) -> Any:
    """An intent as another live process on this machine would hold it (our parent's pid)."""
    sf = pack.wavespeed.journal.singleflight
    mine = sf.new_intent("acct", "ident", "m", "payload")
    return replace(mine, **{"owner": "another-process", "pid": os.getppid(), **changes})


def _acquire(pack: ModuleType, journal: Any, deadline_s: float = 30.0, cancel: Any = None) -> Any:
    sf = pack.wavespeed.journal.singleflight
    return sf.acquire(
        journal,
        sf.new_intent("acct", "ident", "m", "payload"),
        max_age_s=7 * 86400,
        reuse_statuses=STATUSES,
        deadline=time.monotonic() + deadline_s,
        cancel=cancel or (lambda: False),
    )


def test_a_live_claim_is_waited_on_until_its_task_is_recorded(pack: ModuleType, tmp_path: Path) -> None:
    journal = _journal(pack, tmp_path)
    other = _other(pack)
    assert journal.claim_intent(other, max_age_s=1e9, reuse_statuses=STATUSES) is None
    waits: list[str] = []

    def owner_finishes() -> None:
        while not waits:
            time.sleep(0.01)
        writer = _journal(pack, tmp_path)  # its own connection, as another process would have
        writer.record_submitted(
            "task1",
            model="m",
            params={"p": 1},
            price_usd=0.08,
            account="acct",
            identity_hash="ident",
            release_intent=True,
        )
        writer.close()

    thread = threading.Thread(target=owner_finishes)
    thread.start()
    sf = pack.wavespeed.journal.singleflight
    got = sf.acquire(
        journal,
        sf.new_intent("acct", "ident", "m", "payload"),
        max_age_s=7 * 86400,
        reuse_statuses=STATUSES,
        deadline=time.monotonic() + 30,
        cancel=lambda: False,
        on_wait=lambda intent: waits.append(intent.owner),
    )
    thread.join()
    assert isinstance(got, pack.wavespeed.journal.task_journal.TaskRecord) and got.request_id == "task1"
    assert waits and set(waits) == {"another-process"}
    assert journal.get_intent("acct", "ident") is None


def test_waiting_is_bounded_and_cancellable(pack: ModuleType, tmp_path: Path) -> None:
    errors = pack.wavespeed.core.errors
    journal = _journal(pack, tmp_path)
    journal.claim_intent(_other(pack), max_age_s=1e9, reuse_statuses=STATUSES)
    with pytest.raises(errors.WaitTimeoutError, match="force_rerun"):
        _acquire(pack, journal, deadline_s=0.3)
    with pytest.raises(errors.CancelledError):
        _acquire(pack, journal, cancel=lambda: True)


def test_a_dead_owner_or_an_expired_lease_is_interrupted(pack: ModuleType, tmp_path: Path) -> None:
    sf = pack.wavespeed.journal.singleflight
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    for stale in (
        _other(pack, pid=dead_pid),  # this machine, pid gone (kill -9): stale at once
        _other(pack, host="elsewhere/boot", lease_until=time.time() - 1),  # another host, lease not renewed
        _other(pack, state="uncertain"),  # alive, but its submit may have been paid without an id
    ):
        journal = _journal(pack, tmp_path / stale.host.replace("/", "_") / str(stale.pid) / stale.state)
        journal.claim_intent(stale, max_age_s=1e9, reuse_statuses=STATUSES)
        got = _acquire(pack, journal)
        assert isinstance(got, pack.wavespeed.journal.task_journal.Intent) and got.owner == "another-process"
        assert not sf.owner_alive(got)
        message = sf.interrupted_message(got)
        assert "may have been paid" in message and "force_rerun" in message and "\n" not in message
    assert sf.owner_alive(_other(pack, host="elsewhere/boot", lease_until=time.time() + 30))


def test_history_timestamps_with_nanoseconds(pack: ModuleType) -> None:
    created = importlib.import_module(f"{pack.__name__}.wavespeed.journal.history_search").created_epoch
    assert created("2025-05-19T06:09:15.948268264Z") == pytest.approx(1747634955.948268)
    assert created("2025-05-19T06:09:15Z") == pytest.approx(1747634955.0)
    for bad in ("", "yesterday", None, 17, "2025-13-40T00:00:00Z"):
        assert created(bad) is None


_HOLDER = """
import importlib, os, sys, time
sys.path.insert(0, sys.argv[2])
from scripts.pack_loader import PACK_NAME, load_pack
load_pack()
sf = importlib.import_module(PACK_NAME + ".wavespeed.journal.singleflight")
journal = importlib.import_module(PACK_NAME + ".wavespeed.journal.task_journal").Journal(sys.argv[1])
got = sf.acquire(journal, sf.new_intent("acct", "ident", "m", "payload"), max_age_s=None,
                 reuse_statuses=(), deadline=time.monotonic() + 10, cancel=lambda: False)
print("claimed" if got is None else "refused", os.getpid(), flush=True)
sys.stdin.read()  # holds the claim (its lease renewed) until the test closes stdin
"""


def test_an_owner_in_another_pid_namespace_is_judged_by_its_lease_not_its_pid(
    pack: ModuleType, tmp_path: Path
) -> None:
    """Containers on one machine can share its hostname and boot id (host networking) and number
    their processes apart. A live claim made in another PID namespace is waited on: its pid, which
    names another process here, is never read as the owner being gone (that handed a live submit to
    the recovery path, which then said "may have been paid")."""
    from scripts.pack_loader import REPO_ROOT
    from tests.support.ci import unavailable

    sf = pack.wavespeed.journal.singleflight
    user_ns = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    command = ["unshare", *user_ns, "--pid", "--fork", "--mount-proc", sys.executable, "-c", _HOLDER]
    try:
        holder = subprocess.Popen(
            [*command, str(tmp_path / "j"), str(REPO_ROOT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    except FileNotFoundError:
        unavailable("unshare (util-linux) is not installed")
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline().split()
        if not line:
            unavailable(f"no PID namespace here: {holder.stderr.read() if holder.stderr else ''}"[:300])
        assert line[0] == "claimed" and int(line[1]) != os.getpid(), line
        journal = _journal(pack, tmp_path)
        held = journal.get_intent("acct", "ident")
        assert held is not None and held.pid == int(line[1])
        assert sf.owner_alive(held)  # a live lease, whatever its pid means here
        with pytest.raises(pack.wavespeed.core.errors.WaitTimeoutError):
            _acquire(pack, journal, deadline_s=1.0)  # waited on, not handed back as interrupted
        assert held.host != sf.HOST  # another namespace is another "host": its pid is never read
    finally:
        holder.kill()
        holder.wait(10)
