"""The task journal: paid results survive crashes and restarts, re-queues reuse them, and the
session budget stops the submission that would cross it. Nodes are called directly against the
emulator (real sockets); the crash test SIGKILLs a real second process mid-wait."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from wavespeed_kontext_pack.wavespeed.journal.task_journal import Journal

from emulator import Emulator
from tests.support.journal_processes import kill_when, start_worker
from tests.support.node_calls import PROMPT, call, capture_status, chain, generate, node, restart_pack

DAY = 86400.0


async def _generate(pack: ModuleType, prompt: str = PROMPT, **kw: Any) -> Any:
    task, rid = await generate(prompt, **kw)
    assert rid == task.request_id
    return task


def _records(directory: Path) -> list[dict[str, Any]]:
    """Every row of the journal in ``directory``, read by a separate connection, as dicts."""
    if not (directory / "journal.sqlite3").exists():
        return []
    journal = Journal(directory)
    try:
        rows = journal.recent(limit=10**9)
    finally:
        journal.close()
    return [{**dataclasses.asdict(r), "outputs": list(r.outputs)} for r in rows]


# --------------------------------------------------------------------------- (a) crash recovery


def test_sigkill_while_waiting_then_recover_from_recent_tasks(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path
) -> None:
    pack_env.configure(inference_s=3.0)
    in_flight: list[dict[str, Any]] = []

    def journaled() -> bool:
        rows = _records(journal_dir)
        if rows and rows[0]["status"] == "in_flight":
            in_flight[:] = rows[:1]
        return bool(in_flight)

    out, _ = kill_when(
        start_worker("a castle in the fog", "11"), journaled, 40, "the worker never journaled a task"
    )
    record = in_flight[0]
    assert "done" not in out  # it died mid-wait, with a paid task in flight
    rid = record["request_id"]
    assert pack_env.submissions == 1

    restart_pack(pack)  # "restart ComfyUI": nothing in memory, only the journal on disk
    journal = pack.wavespeed.journal.task_journal.Journal(journal_dir)
    assert [r.request_id for r in journal.in_flight()] == [rid]
    picked, listing = asyncio.run(call("WaveSpeedRecentTasks", 0, "in flight"))
    assert picked == rid and rid in listing and "a castle in the fog" in listing

    images, urls, got, _, _ = asyncio.run(call("WaveSpeedPollResult", 60, "pass through", request_id=picked))
    assert got == rid and tuple(images.shape) == (1, 1024, 1024, 3)
    assert pack_env.submissions == 1  # recovered without a second charge
    assert journal.get(rid).status == "completed" and journal.in_flight() == []
    assert journal.get(rid).outputs == tuple(urls.splitlines())


# --------------------------------------------------------------------------- (b) concurrency


def test_fifty_concurrent_tasks_are_all_journaled(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path
) -> None:
    async def run_all() -> list[Any]:
        return await asyncio.gather(*(chain(f"tile number {i}", seed=1000 + i) for i in range(50)))

    results = asyncio.run(run_all())
    ids = {r[2] for r in results}
    assert len(ids) == 50 and pack_env.submissions == 50
    rows = _records(journal_dir)
    assert len(rows) == 50 and {r["request_id"] for r in rows} == ids
    assert all(r["status"] == "completed" and len(r["outputs"]) == 1 for r in rows)
    assert all(r["price_usd"] == pytest.approx(0.08) for r in rows)
    by_id = {r["request_id"]: r for r in rows}
    for _images, urls, rid, _, _ in results:
        assert by_id[rid]["outputs"] == [urls]
        assert by_id[rid]["params"]["prompt"] == pack_env.task(rid).input["prompt"]


# --------------------------------------------------------------------------- (c) reuse rules


def test_requeue_with_fixed_seed_reuses_and_force_rerun_pays(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = asyncio.run(chain(seed=42))
    assert pack_env.submissions == 1

    restart_pack(pack)  # a new process: only the journal remembers
    status = capture_status(pack, monkeypatch)
    task = asyncio.run(
        call(
            "FluxKontextMaxGenerate",
            "a lighthouse at dusk",
            42,
            3.5,
            "1:1",
            True,
            unique_id="9",  # sync mode: same image
        )
    )[0]
    assert task.request_id == first[2] and task.price_usd == 0.0
    assert pack_env.submissions == 1
    assert f"reused task {first[2][:8]}… (no charge)" in status
    again = asyncio.run(call("WaveSpeedPollResult", 60, "pass through", task=task))
    np.testing.assert_array_equal(again[0].numpy(), first[0].numpy())
    assert pack_env.submissions == 1

    forced = asyncio.run(chain(seed=42, force_rerun=True))
    assert pack_env.submissions == 2 and forced[2] != first[2]

    other = asyncio.run(chain("a lighthouse at dawn", seed=42))  # different params: new task
    assert pack_env.submissions == 3 and other[2] != first[2]

    a = asyncio.run(chain(seed=-1))
    b = asyncio.run(chain(seed=-1))
    assert pack_env.submissions == 5 and a[2] != b[2]


def test_in_flight_task_is_reused_after_its_waiter_died(pack: ModuleType, pack_env: Emulator) -> None:
    """A re-queue after a crash or timeout waits for the task already paid for."""
    pack_env.configure(inference_s=0.6)
    task = asyncio.run(_generate(pack, "paid but never polled", seed=5))  # stays in flight
    pack.wavespeed.tasks.paid.submit.reset_session_state()  # as after a ComfyUI restart
    again = asyncio.run(_generate(pack, "paid but never polled", seed=5))
    assert again.request_id == task.request_id and pack_env.submissions == 1
    images, *_ = asyncio.run(call("WaveSpeedPollResult", 60, "pass through", task=again))
    assert images.shape[0] == 1 and pack_env.submissions == 1


def test_no_reuse_of_failed_or_expired_tasks(pack: ModuleType, pack_env: Emulator, journal_dir: Path) -> None:
    pack_env.next_tasks(fail="boom", fail_code=1403)
    task = asyncio.run(_generate(pack, seed=5))  # in flight in the journal, failed on the server
    time.sleep(0.3)  # let its inference time pass so the server reports the failure
    asyncio.run(_generate(pack, seed=5))
    assert pack_env.submissions == 2  # the failed task is not reused

    done = asyncio.run(chain("an old result", seed=6))
    with sqlite3.connect(journal_dir / "journal.sqlite3") as db:  # older than WaveSpeed keeps tasks
        db.execute(
            "UPDATE tasks SET submitted_at = ?, boot_id = '' WHERE request_id = ?",
            (time.time() - 7 * DAY - 60, done[2]),
        )
    # Its age is the wall clock's word: WaveSpeed is asked, and it still has the task here.
    old = asyncio.run(_generate(pack, "an old result", seed=6))
    assert pack_env.submissions == 3 and old.request_id == done[2]
    assert task.request_id != done[2]

    # The journal says completed, but WaveSpeed no longer has the task: pay for a new one.
    gone = asyncio.run(chain("a forgotten result", seed=8))
    pack_env.reset()
    fresh = asyncio.run(_generate(pack, "a forgotten result", seed=8))
    assert pack_env.submissions == 1 and fresh.request_id != gone[2]  # (reset: the counter too)
    assert pack.wavespeed.tasks.journals.current_journal().get(gone[2]).status == "expired"


# --------------------------------------------------------------------------- (d) budget


def test_budget_stops_the_submission_that_would_cross_it(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    errors = pack.wavespeed.core.errors
    monkeypatch.setenv("WAVESPEED_SESSION_BUDGET_USD", "0.20")
    status = capture_status(pack, monkeypatch)
    first = asyncio.run(chain(seed=1, unique_id="3"))
    asyncio.run(_generate(pack, seed=2, unique_id="3"))
    assert pack_env.submissions == 2
    assert any("session $0.16 of $0.20" in s for s in status)
    with pytest.raises(errors.BudgetExceededError) as caught:
        asyncio.run(_generate(pack, seed=3))
    assert str(caught.value) == (
        "This task ($0.08) would bring this session's WaveSpeed spend to $0.24, over the $0.20 budget "
        "(WAVESPEED_SESSION_BUDGET_USD): raise the budget or restart ComfyUI to reset it."
    )
    assert pack_env.submissions == 2
    reused = asyncio.run(_generate(pack, seed=1))  # a reused result costs nothing: still allowed
    assert reused.request_id == first[2] and pack_env.submissions == 2

    restart_pack(pack)  # a restart resets the session's spend
    asyncio.run(_generate(pack, seed=3))
    assert pack_env.submissions == 3


def test_budget_gives_back_rejected_submits_but_not_uncertain_ones(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    errors = pack.wavespeed.core.errors
    monkeypatch.setenv("WAVESPEED_SESSION_BUDGET_USD", "0.08")
    pack_env.inject("submit", "status", status=400, message="bad request")
    with pytest.raises(errors.InvalidRequestError):
        asyncio.run(_generate(pack, seed=1))
    assert pack.wavespeed.tasks.paid.payment.SESSION_SPEND.spent_usd == 0.0  # rejected: nothing was charged
    pack_env.inject("submit", "reset_after_accept")
    with pytest.raises(errors.SubmitUncertainError):
        asyncio.run(_generate(pack, seed=1))
    assert pack_env.submissions == 1  # the server did charge it, so the session counts it
    with pytest.raises(errors.BudgetExceededError):
        asyncio.run(_generate(pack, seed=2))
    assert pack_env.submissions == 1


def test_bad_budget_value_is_a_config_error(pack: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = pack.wavespeed.settings.session_budget
    assert journal.session_budget_usd({}) is None
    assert journal.session_budget_usd({"WAVESPEED_SESSION_BUDGET_USD": "$2.5"}) == 2.5
    for bad in ("five", "-1", "nan", "inf"):
        with pytest.raises(pack.wavespeed.core.errors.ConfigError, match="WAVESPEED_SESSION_BUDGET_USD"):
            journal.session_budget_usd({"WAVESPEED_SESSION_BUDGET_USD": bad})


def test_balance_is_shown_when_asked_and_never_fails_the_node(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAVESPEED_SHOW_BALANCE", "1")
    status = capture_status(pack, monkeypatch)
    asyncio.run(_generate(pack, seed=1, unique_id="4"))
    assert any(s.endswith("balance $99.92") for s in status), status
    pack_env.inject("balance", "status", status=401, message="no")
    asyncio.run(_generate(pack, seed=2, unique_id="4"))
    assert status[-1].startswith("submitted · $0.08 · task ") and "balance" not in status[-1]
    assert pack_env.submissions == 2


# --------------------------------------------------------------------------- (e) no key on disk


def test_no_key_in_any_journal_file(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path, api_key: str
) -> None:
    asyncio.run(chain(seed=1))
    asyncio.run(chain(f"a poster that reads {api_key}", seed=2))  # even if a prompt holds it
    files = [p for p in journal_dir.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"journal.sqlite3"}
    for path in files:
        assert api_key.encode() not in path.read_bytes()
    assert any(b"***" in p.read_bytes() for p in files)
    assert any(
        "***" in r["prompt"] for r in (dict(r, prompt=r["params"]["prompt"]) for r in _records(journal_dir))
    )
    journal = pack.wavespeed.journal.task_journal.Journal(journal_dir)
    for field in ("api_key", "token", "Authorization", "secret"):
        with pytest.raises(ValueError, match="key-like"):
            journal.record_submitted("abc123", model="m", params={"prompt": "x", field: "v"}, price_usd=0.08)
    assert journal.get("abc123") is None


# --------------------------------------------------------------------------- (f) private files


def test_journal_files_are_private(pack: ModuleType, tmp_path: Path) -> None:
    journal = pack.wavespeed.journal.task_journal.Journal(tmp_path / "j")
    journal.record_submitted("task01", model="m", params={"prompt": "p", "seed": 1}, price_usd=0.08)
    assert (tmp_path / "j").stat().st_mode & 0o777 == 0o700
    names = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "j").iterdir()}
    assert "journal.sqlite3" in names and "journal.sqlite3-wal" in names
    assert set(names.values()) == {0o600}, names


def test_unknown_fields_and_bad_ids_are_refused(pack: ModuleType, tmp_path: Path) -> None:
    journal = pack.wavespeed.journal.task_journal.Journal(tmp_path)
    with pytest.raises(ValueError):
        journal.record_submitted("../../etc/passwd", model="m", params={}, price_usd=0.0)
    journal.record_submitted("t1", model="m", params={}, price_usd=0.0)
    with pytest.raises(ValueError):
        journal.update("t1", params_hash="0" * 64)
    with pytest.raises(ValueError):
        journal.update("t1", status="done")
    assert journal.update("nope", status="failed") is None


# --------------------------------------------------------------------------- (g) pruning


def test_prune_drops_records_older_than_seven_days(pack: ModuleType, tmp_path: Path) -> None:
    jmod = pack.wavespeed.journal.task_journal
    journal = jmod.Journal(tmp_path)
    now = time.time()
    journal._last_prune = time.monotonic()  # no opportunistic prune for this part
    for rid, age in (("old", 8 * DAY), ("recent", DAY), ("unfetched", 8 * DAY)):
        journal.record_submitted(
            rid, model="m", params={"prompt": rid}, price_usd=0.08, submitted_at=now - age
        )
    journal.update("old", status="completed")
    journal.update("recent", status="completed")
    assert journal.prune(now) == 1
    assert journal.get("old") is None and journal.get("recent") is not None
    # Never seen terminal: a paid result nobody fetched yet is never pruned.
    assert [r.request_id for r in journal.recent()] == ["recent", "unfetched"]

    # A process prunes on its first journal write (then at most hourly), so nothing piles up.
    journal.record_submitted("stale", model="m", params={}, price_usd=0.0, submitted_at=now - 8 * DAY)
    journal.update("stale", status="failed")
    fresh = jmod.Journal(tmp_path)
    fresh.record_submitted("new", model="m", params={}, price_usd=0.0)
    assert [r.request_id for r in fresh.recent()] == ["new", "recent", "unfetched"]


# --------------------------------------------------------------------------- Poll keeps the record current


def test_poll_records_failures_timeouts_and_expiry(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path
) -> None:
    errors = pack.wavespeed.core.errors
    journal = pack.wavespeed.tasks.journals.current_journal()

    pack_env.next_tasks(fail="prompt rejected by the safety filter")
    failing = asyncio.run(_generate(pack, seed=1))
    with pytest.raises(errors.TaskFailedError):
        asyncio.run(call("WaveSpeedPollResult", 60, "pass through", task=failing))
    record = journal.get(failing.request_id)
    assert record.status == "failed" and "safety filter" in record.error

    pack_env.next_tasks(never_finish=True)
    hanging = asyncio.run(_generate(pack, seed=2))
    with pytest.raises(errors.WaitTimeoutError):
        asyncio.run(call("WaveSpeedPollResult", 1, "pass through", task=hanging))
    record = journal.get(hanging.request_id)
    assert record.status == "in_flight" and "timed out" in record.note
    assert record.server_status in ("created", "processing")

    journal.record_submitted("0" * 32, model="m", params={"prompt": "lost"}, price_usd=0.08)
    with pytest.raises(errors.NotFoundError):
        asyncio.run(call("WaveSpeedPollResult", 60, "pass through", request_id="0" * 32))
    assert journal.get("0" * 32).status == "expired"


def test_sync_mode_result_is_journaled_completed(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path
) -> None:
    task = asyncio.run(_generate(pack, seed=1, sync_mode=True))
    record = pack.wavespeed.tasks.journals.current_journal().get(task.request_id)
    assert task.prediction is not None and record.status == "completed"
    assert record.outputs == tuple(o for o in task.prediction.outputs if o.startswith("http"))


# --------------------------------------------------------------------------- Recent Tasks node


def test_recent_tasks_lists_filters_and_picks(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path
) -> None:
    cls = node("WaveSpeedRecentTasks")  # (its widgets: tests/nodes/test_v3_schema.py)
    assert cls.fingerprint_inputs(index=0, status_filter="all") != cls.fingerprint_inputs(
        index=0, status_filter="all"
    )

    done = asyncio.run(chain("first, completed", seed=1))[2]
    time.sleep(0.01)
    pending = asyncio.run(_generate(pack, "second, in flight", seed=2)).request_id
    rid, listing = asyncio.run(call("WaveSpeedRecentTasks", 0, "all"))
    assert rid == pending
    lines = listing.splitlines()
    assert str(journal_dir) in lines[0] and "2 tasks" in lines[0]
    assert (
        lines[1].startswith("▶  0  " + pending)
        and "in flight" in lines[1]
        and "second, in flight" in lines[1]
    )
    assert lines[2].startswith("   1  " + done) and "completed" in lines[2] and "$0.08" in lines[2]
    assert asyncio.run(call("WaveSpeedRecentTasks", 1, "all"))[0] == done
    assert asyncio.run(call("WaveSpeedRecentTasks", 0, "completed"))[0] == done
    with pytest.raises(
        pack.wavespeed.core.errors.InvalidRequestError, match="no task #0 among the 0 failed tasks"
    ):
        asyncio.run(call("WaveSpeedRecentTasks", 0, "failed"))


def test_default_journal_dir(pack: ModuleType, tmp_path: Path) -> None:
    jmod = pack.wavespeed.journal.task_journal
    assert jmod.default_journal_dir(None, {"WAVESPEED_JOURNAL_DIR": str(tmp_path)}) == tmp_path
    assert jmod.default_journal_dir("/comfy/user", {}) == Path("/comfy/user/wavespeed/journal")
    assert jmod.default_journal_dir(None, {}) == Path("~/.cache/wavespeed-kontext/journal").expanduser()


def test_params_hash_ignores_sync_mode_and_is_key_order_free(pack: ModuleType) -> None:
    h = pack.wavespeed.journal.task_journal.params_hash
    a = {"prompt": "p", "seed": 1, "enable_sync_mode": False}
    assert h("m", a) == h("m", {"enable_sync_mode": True, "seed": 1, "prompt": "p"})
    assert h("m", a) != h("m", {**a, "seed": 2}) and h("m", a) != h("other", a)


def test_a_journal_of_the_previous_schema_opens_and_its_intents_match_on_their_hash(
    pack: ModuleType, tmp_path: Path
) -> None:
    """Intents now keep the payload they sent; a file written before (no such column, an
    interrupted intent in it) opens, gains the column, and the old intent reads with no payload."""
    old = tmp_path / "journal.sqlite3"
    with sqlite3.connect(old) as db:
        db.executescript(
            "CREATE TABLE intents (account TEXT NOT NULL, identity TEXT NOT NULL, model TEXT NOT NULL,"
            " payload_hash TEXT NOT NULL, claimed_at REAL NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,"
            " owner TEXT NOT NULL, lease_until REAL NOT NULL, state TEXT NOT NULL,"
            " boot_id TEXT NOT NULL DEFAULT '', boot_s REAL NOT NULL DEFAULT 0, UNIQUE (account, identity));"
            "INSERT INTO intents VALUES ('a', 'i', 'm', 'h', 1.0, 'host', 1, 'o', 0, 'uncertain', '', 0);"
        )
    db.close()
    journal = pack.wavespeed.journal.task_journal.Journal(tmp_path)
    intent = journal.get_intent("a", "i")
    assert intent is not None and intent.payload is None and intent.payload_hash == "h"
    sf = pack.wavespeed.journal.singleflight
    mine = sf.new_intent("a", "j", "m", "h2", {"prompt": "p", "seed": 5})
    assert journal.claim_intent(mine, max_age_s=1e9, reuse_statuses=()) is None
    assert journal.get_intent("a", "j").payload == {"prompt": "p", "seed": 5}
    journal.close()
