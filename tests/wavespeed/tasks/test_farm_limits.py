"""A farm's workers share one account's limits and one budget through the PostgreSQL journal
(WAVESPEED_JOURNAL_URL). Workers are separate processes, each with its own journal folder; the
emulated account's own counters (429s, task times) are the evidence."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import psycopg
import pytest
from wavespeed_kontext_pack.wavespeed.journal.farm.account_limits import RETRY_S, AccountLimits, FarmLimits
from wavespeed_kontext_pack.wavespeed.journal.farm.pg_journal import PostgresJournal
from wavespeed_kontext_pack.wavespeed.tasks.farm_gate import FarmGate

from emulator import Emulator
from scripts.pack_loader import call
from tests.support.journal_processes import start_worker
from tests.support.node_calls import generate, restart_pack

pytestmark = pytest.mark.farm

WINDOW_S = "3"  # the account's minute, scaled down (the emulator's and the workers')


def _most_at_once(emu: Emulator) -> int:
    """The most tasks the emulated account held unfinished (accepted, not yet done) at one moment."""
    edges = sorted(
        edge for t in emu.history() for edge in ((t.submitted_mono, 1), (t.terminal_at or float("inf"), -1))
    )  # an end sorts before a start at the same moment
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def test_three_workers_on_a_bronze_account_share_its_two_tasks_at_once(
    pack_env: Emulator, pg_url: str, tmp_path: Path
) -> None:
    pack_env.configure(tier="bronze", minute_s=float(WINDOW_S), inference_s=2.0)
    env = {
        "WAVESPEED_JOURNAL_URL": pg_url,
        "WAVESPEED_ACCOUNT_TIER": "bronze",
        "WAVESPEED_RATE_WINDOW_S": WINDOW_S,
    }
    procs = [
        start_worker("a bronze farm", "-1", "--batch", "4", env={**env, "WAVESPEED_JOURNAL_DIR": str(tmp_path / f"w{n}")})
        for n in range(3)
    ]  # fmt: skip
    try:
        outs = [proc.communicate(timeout=240) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert [out.splitlines()[-1] for out, _ in outs] == ["batch 4 4x1024x1024x3"] * 3, outs
    assert pack_env.submissions == 12
    assert _most_at_once(pack_env) <= 2
    assert pack_env.rate_limited <= 1, outs  # no 429 storm: the farm keeps within the window itself
    journal = PostgresJournal(pg_url)
    with journal.transaction() as conn:
        assert conn.execute("SELECT count(*) FROM account_slots").fetchone() == (0,)  # every slot freed
    journal.close()


def test_a_dead_workers_task_slot_frees_by_its_lease(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    limits = FarmLimits(PostgresJournal(pg_url))
    bronze = AccountLimits(per_window=None, window_s=60, at_once=2)
    assert limits.try_admit("acct", bronze, "a") is None and limits.try_admit("acct", bronze, "b") is None
    assert limits.try_admit("acct", bronze, "c") is not None  # two held: wait
    limits.accepted("a", "task-a", finished=False)
    with limits.journal.transaction() as conn:  # worker b died an hour ago: its lease ran out
        conn.execute("UPDATE account_slots SET lease_until = lease_until - 3600 WHERE slot = 'b'")
    assert limits.try_admit("acct", bronze, "c") is None
    limits.finished("task-a")
    assert limits.try_admit("acct", bronze, "d") is None
    assert limits.try_admit("other-account", bronze, "e") is None  # another account: its own budget
    limits.journal.close()


def test_the_per_window_submits_are_one_budget(pg_url: str) -> None:
    limits = FarmLimits(PostgresJournal(pg_url))
    bronze = AccountLimits(per_window=2, window_s=60, at_once=None)
    assert limits.try_admit("acct", bronze, "a") is None and limits.try_admit("acct", bronze, "b") is None
    assert limits.try_admit("acct", bronze, "c") == RETRY_S  # both still being sent: ask again soon
    limits.refused("b")  # WaveSpeed took nothing: its place in the window is given back
    assert limits.try_admit("acct", bronze, "c") is None
    limits.accepted("a", "task-a", finished=True)
    limits.accepted("c", "task-c", finished=False)
    wait = limits.try_admit("acct", bronze, "d")  # full until a's reply is a window old
    assert wait is not None and 55 < wait <= 60
    limits.journal.close()


def test_the_farm_budget_is_one_cap_for_every_worker(
    pack: ModuleType, pack_env: Emulator, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers (separate processes) under a $0.16 farm budget: two $0.08 tasks are paid, the
    third is refused before anything is sent, whichever worker asks."""
    env = {"WAVESPEED_JOURNAL_URL": pg_url, "WAVESPEED_FARM_BUDGET_USD": "0.16"}
    for n in range(2):
        worker = start_worker(
            f"budget {n}", "-1", "--no-poll", env={**env, "WAVESPEED_JOURNAL_DIR": str(tmp_path / str(n))}
        )
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0 and "$0.08" in out, err
    for name, value in {**env, "WAVESPEED_JOURNAL_DIR": str(tmp_path / "2")}.items():
        monkeypatch.setenv(name, value)
    restart_pack(pack)
    with pytest.raises(pack.wavespeed.core.errors.BudgetExceededError) as caught:
        asyncio.run(generate("budget 2", seed=-1))
    assert "farm budget" in str(caught.value) and "$0.24" in str(caught.value)
    assert pack_env.submissions == 2


def test_a_farm_budget_without_a_farm_journal_is_refused_in_one_line(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAVESPEED_FARM_BUDGET_USD", "5")
    with pytest.raises(pack.wavespeed.core.errors.ConfigError, match="WAVESPEED_FARM_BUDGET_USD needs"):
        asyncio.run(generate("no farm", seed=-1))
    assert pack_env.submissions == 0


def test_a_batch_the_farm_budget_cannot_cover_submits_nothing(
    pack: ModuleType, pack_env: Emulator, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$0.16 left of the farm's budget: a batch of three $0.08 images is refused whole, before any
    submit; a batch of two fits and is paid."""
    for name, value in {"WAVESPEED_JOURNAL_URL": pg_url, "WAVESPEED_FARM_BUDGET_USD": "0.16",
                        "WAVESPEED_JOURNAL_DIR": str(tmp_path)}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    restart_pack(pack)
    with pytest.raises(pack.wavespeed.core.errors.BudgetExceededError) as caught:
        asyncio.run(call("FluxKontextMaxBatch", "a farm batch", 3, -1, 3.5, "1:1"))
    assert "This batch costs $0.24 (3 images); the farm budget has $0.16 left" in str(caught.value)
    assert pack_env.submissions == 0
    asyncio.run(call("FluxKontextMaxBatch", "a farm batch", 2, -1, 3.5, "1:1"))
    assert pack_env.submissions == 2
    assert FarmLimits(PostgresJournal(pg_url)).spent() == pytest.approx(0.16)


def test_a_busy_farm_database_is_waited_for_not_bypassed(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Another worker holds the account's lock past this worker's lock wait: the POST waits for
    the farm's answer (never goes on with this worker's own limits alone) and is sent after it."""
    monkeypatch.setenv("WAVESPEED_JOURNAL_LOCK_WAIT_S", "0.2")
    journal = PostgresJournal(pg_url)
    journal.recent()  # the tables
    gate = FarmGate(FarmLimits(journal), "acct", AccountLimits(2, 60, 2), lambda exc: False)
    released = threading.Event()
    with psycopg.connect(pg_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", ("acct\naccount limits",))

        def release() -> None:
            released.set()
            holder.execute("SELECT pg_advisory_unlock_all()")

        timer = threading.Timer(1.0, release)
        timer.start()

        def post() -> Any:
            assert released.is_set(), "sent while the farm's limits could not be asked"
            return SimpleNamespace(id="task-1", is_terminal=False)

        with caplog.at_level(logging.WARNING):
            sent = gate.post(
                post, cancel=lambda: False, status=lambda text: None, deadline=time.monotonic() + 60
            )
        timer.join()
    assert sent.id == "task-1" and "farm limits unavailable" not in caplog.text
    journal.close()
