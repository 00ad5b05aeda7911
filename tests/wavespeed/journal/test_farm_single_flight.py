"""Pay once across a farm: workers as separate processes, each with its own journal folder and no
shared local state, share one PostgreSQL journal (WAVESPEED_JOURNAL_URL). The emulator's
accepted-submission counter is the bill; workers are killed with SIGKILL."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest
from wavespeed_kontext_pack.wavespeed.journal.farm.pg_journal import PostgresJournal

from emulator import Emulator
from tests.support.journal_processes import kill_when, start_worker
from tests.support.node_calls import capture_status, generate, poll, restart_pack
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.farm


def _worker_env(pg_url: str, folder: Path) -> dict[str, str]:
    """One worker of the farm: the shared database, its own journal folder."""
    return {"WAVESPEED_JOURNAL_URL": pg_url, "WAVESPEED_JOURNAL_DIR": str(folder)}


def _finish(procs: list[subprocess.Popen[str]], timeout: float = 120) -> list[tuple[str, str]]:
    try:
        return [proc.communicate(timeout=timeout) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def _lines(out: str, word: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines() if line.startswith(word)]


def _use_farm(pack: ModuleType, monkeypatch: pytest.MonkeyPatch, pg_url: str, folder: Path) -> None:
    """This test process as one more worker of the farm (nothing in memory, as after a restart)."""
    for name, value in _worker_env(pg_url, folder).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("WAVESPEED_SESSION_BUDGET_USD", raising=False)
    restart_pack(pack)


def test_three_workers_at_the_same_moment_pay_once_and_all_get_the_image(
    pack_env: Emulator, pg_url: str, tmp_path: Path
) -> None:
    pack_env.configure(inference_s=1.5)
    go = tmp_path / "go"
    procs = [
        start_worker("one prompt, three hosts", "31", "--sync", "--go", str(go), env=_worker_env(pg_url, tmp_path / f"w{n}"))
        for n in range(3)
    ]  # fmt: skip
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    go.touch()
    outs = _finish(procs)
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert pack_env.submissions == 1, outs
    submitted = [words for out, _ in outs for words in _lines(out, "submitted")]
    done = [words for out, _ in outs for words in _lines(out, "done")]
    (rid,) = {words[1] for words in submitted + done}
    assert sorted(words[2] for words in submitted) == ["$0.00", "$0.00", "$0.08"]
    assert [words[2] for words in done] == ["1x1024x1024x3"] * 3
    journal = PostgresJournal(pg_url)
    assert [(r.request_id, r.status) for r in journal.recent()] == [(rid, "completed")]
    journal.close()


def test_a_worker_killed_mid_sync_submit_is_not_paid_again_on_another(
    pack_env: Emulator, pg_url: str, tmp_path: Path
) -> None:
    pack_env.configure(inference_s=1.0)
    first = start_worker("killed on host a", "41", "--sync", env=_worker_env(pg_url, tmp_path / "a"))
    kill_when(first, lambda: pack_env.submissions > 0, 60, "the first worker's task was never accepted")
    (paid,) = [t.id for t in pack_env.history()]
    (out, err), = _finish([start_worker("killed on host a", "41", "--sync", env=_worker_env(pg_url, tmp_path / "b"))])  # fmt: skip
    assert pack_env.submissions == 1, (out, err)
    assert _lines(out, "submitted") == [["submitted", paid, "$0.00"]], err
    assert _lines(out, "done") == [["done", paid, "1x1024x1024x3"]], err


def test_a_dead_workers_lease_on_another_host_is_released_by_time(
    pack: ModuleType, pack_env: Emulator, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker on "another host" (its host name is not ours, so its pid means nothing here) is
    SIGKILLed mid-submit: the next worker waits while its lease runs, then recovers the task."""
    pack_env.configure(inference_s=1.0)
    other = start_worker(
        "killed on host c", "51", "--sync", "--host", "farm-node-c/boot", "--lease", "4",
        env=_worker_env(pg_url, tmp_path / "c"),
    )  # fmt: skip
    kill_when(other, lambda: pack_env.submissions > 0, 60, "the other host's task was never accepted")
    (paid,) = [t.id for t in pack_env.history()]
    _use_farm(pack, monkeypatch, pg_url, tmp_path / "d")
    status = capture_status(pack, monkeypatch)
    task, _ = asyncio.run(generate("killed on host c", seed=51, sync_mode=True, unique_id="5"))
    assert task.request_id == paid and task.price_usd == 0.0 and pack_env.submissions == 1
    assert any("being submitted by another ComfyUI" in s for s in status), status  # waited on its lease
    assert f"found interrupted task {paid[:8]}… in WaveSpeed history (no charge)" in status


def test_a_connection_dropped_mid_submit_still_journals_the_task_and_pays_once(
    pack: ModuleType, pack_env: Emulator, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pg_terminate_backend while the emulator holds the sync-mode submit: the task is journaled on a
    new connection, and the same prompt on another worker reuses it."""
    pack_env.configure(inference_s=1.5)
    _use_farm(pack, monkeypatch, pg_url, tmp_path / "e")
    result: dict[str, Any] = {}
    submit = threading.Thread(
        target=lambda: result.update(task=asyncio.run(generate("dropped", seed=61, sync_mode=True))[0])
    )
    submit.start()
    try:
        while pack_env.submissions == 0 and submit.is_alive():
            submit.join(0.01)
        database = pg_url.rsplit("/", 1)[1]
        with psycopg.connect(pg_url, autocommit=True) as conn:
            dropped = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchone()
        assert dropped is not None and dropped[0] >= 1
    finally:
        submit.join(60)
    paid = result["task"].request_id
    journal = PostgresJournal(pg_url)
    assert journal.get(paid) is not None
    journal.close()
    (out, err), = _finish([start_worker("dropped", "61", "--sync", env=_worker_env(pg_url, tmp_path / "f"))])  # fmt: skip
    assert _lines(out, "submitted") == [["submitted", paid, "$0.00"]], err
    assert pack_env.submissions == 1


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_farm_journal_pays_nothing_and_force_rerun_pays_without_it(
    pack: ModuleType,
    pack_env: Emulator,
    postgres: PostgresServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = postgres.url("gone").replace(f":{postgres.port}/", f":{_closed_port()}/")
    _use_farm(pack, monkeypatch, url, tmp_path / "g")
    errors = pack.wavespeed.core.errors
    with pytest.raises(errors.WaveSpeedError) as caught:
        asyncio.run(generate("no database", seed=71))
    text = str(caught.value)
    assert pack_env.submissions == 0
    assert "\n" not in text and "***@127.0.0.1" in text and postgres.password not in text
    assert "nothing was submitted" in text and "force_rerun" in text
    forced, _ = asyncio.run(generate("no database", seed=71, force_rerun=True))
    assert pack_env.submissions == 1 and forced.price_usd == pytest.approx(0.08)
    images, *_ = asyncio.run(poll(forced))
    assert images.shape[0] == 1


def test_a_journal_url_that_is_not_postgresql_is_refused_before_anything_is_sent(
    pack: ModuleType, pack_env: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_farm(pack, monkeypatch, "mysql://user:hunter2secret@db/x", tmp_path / "h")
    with pytest.raises(pack.wavespeed.core.errors.ConfigError) as caught:
        asyncio.run(generate("wrong database", seed=-1))
    assert "WAVESPEED_JOURNAL_URL must be" in str(caught.value) and "hunter2secret" not in str(caught.value)
    assert pack_env.submissions == 0
