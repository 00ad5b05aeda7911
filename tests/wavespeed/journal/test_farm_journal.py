"""The journal in PostgreSQL (WAVESPEED_JOURNAL_URL): the same rows and identities as the SQLite
journal, and it fails closed in one line that never holds the password. A real PostgreSQL server
(tests/support/postgres.py), one cluster per session, a fresh database per test."""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from wavespeed_kontext_pack.wavespeed.journal.farm.pg_journal import PostgresJournal, safe_url
from wavespeed_kontext_pack.wavespeed.journal.singleflight import new_intent
from wavespeed_kontext_pack.wavespeed.journal.sqlite_file import JournalError
from wavespeed_kontext_pack.wavespeed.journal.task_journal import Journal

from scripts.pack_loader import REPO_ROOT
from tests.support.postgres import PostgresServer

PARAMS = {"prompt": "a farm at dawn", "seed": 7, "guidance_scale": 3.5, "enable_sync_mode": False}


def _sql(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_same_writes_give_the_same_rows_and_identities_as_sqlite(pg_url: str, tmp_path: Path) -> None:
    farm, local = PostgresJournal(pg_url), Journal(tmp_path)
    try:
        for journal in (farm, local):
            journal.record_submitted(
                "task-1", model="m", params=PARAMS, price_usd=0.08, account="acct", submitted_at=1e9
            )
            journal.update(
                "task-1", status="completed", outputs=["https://cdn.example/1.png"], inference_ms=900
            )
            journal.record_submitted(
                "task-2", model="m", params={**PARAMS, "seed": 8}, price_usd=0.04, submitted_at=2e9
            )
        rows = [[dataclasses.replace(r, updated_at=0.0) for r in j.recent()] for j in (farm, local)]
        assert rows[0] == rows[1] and len(rows[0]) == 2
        identity = rows[1][1].params_hash
        found = [j.find_completed(identity, max_age_s=None, account="acct") for j in (farm, local)]
        assert [f.request_id for f in found if f is not None] == ["task-1", "task-1"]
        assert farm.inference_times("m") == local.inference_times("m") == [0.9]
        assert farm.holder("task-1") == local.holder("task-1") == ("acct", identity)
    finally:
        farm.close()
        local.close()


def test_a_claim_is_the_databases_until_the_task_replaces_it(pg_url: str) -> None:
    journal = PostgresJournal(pg_url)
    intent = new_intent("acct", "ident", "m", "hash", PARAMS)
    assert journal.claim_intent(intent, max_age_s=None, reuse_statuses=("completed",)) is None
    other = PostgresJournal(pg_url)  # another worker
    held = other.claim_intent(new_intent("acct", "ident", "m", "hash"), max_age_s=None, reuse_statuses=())
    assert held is not None and held.owner == intent.owner and held.payload == PARAMS
    journal.record_submitted(
        "task-9", model="m", params=PARAMS, price_usd=0.08, account="acct", identity_hash="ident",
        release_intent=True,
    )  # fmt: skip
    found = other.claim_intent(intent, max_age_s=None, reuse_statuses=("in_flight",))
    assert found is not None and found.request_id == "task-9"  # type: ignore[union-attr]
    assert other.get_intent("acct", "ident") is None
    journal.close()
    other.close()


def test_the_lease_is_written_on_the_databases_clock(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, pack: ModuleType
) -> None:
    """A worker whose clock is an hour ahead still writes (and renews) a lease that the database's
    clock says is 30 s long."""
    journal = PostgresJournal(pg_url)
    server_now = journal.clock()
    ahead = server_now + 3600
    monkeypatch.setattr(pack.wavespeed.journal.singleflight.time, "time", lambda: ahead)
    intent = new_intent("acct", "ident", "m", "hash")
    assert intent.lease_until == ahead + 30
    journal.claim_intent(intent, max_age_s=None, reuse_statuses=())
    stored = journal.get_intent("acct", "ident")
    assert stored is not None and server_now <= stored.claimed_at < server_now + 5
    assert stored.lease_until - stored.claimed_at == pytest.approx(30)
    assert journal.renew_intents(intent.owner, 30, [("acct", "ident")]) == 1
    renewed = journal.get_intent("acct", "ident")
    assert renewed is not None and renewed.lease_until < server_now + 40
    journal.close()


def _fails(journal: PostgresJournal, kind: str, password: str, caplog: pytest.LogCaptureFixture) -> str:
    with caplog.at_level(logging.DEBUG), pytest.raises(JournalError) as caught:
        journal.claim_intent(new_intent("acct", "ident", "m", "hash"), max_age_s=None, reuse_statuses=())
    text = str(caught.value)
    assert caught.value.kind == kind, text
    assert password not in text and password not in caplog.text
    assert "***@127.0.0.1" in text and "force_rerun" in text and "\n" not in text
    return text


def test_an_unreachable_database_is_one_line_without_the_password(
    postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres.url("nowhere").replace(f":{postgres.port}/", f":{_closed_port()}/")
    text = _fails(PostgresJournal(url), "unavailable", postgres.password, caplog)
    assert "refused" in text.lower(), text


def test_a_read_only_database_is_one_line_and_claims_nothing(
    pg_url: str, postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    PostgresJournal(pg_url).recent()  # the tables exist
    database = pg_url.rsplit("/", 1)[1]
    _sql(pg_url, f"ALTER DATABASE {database} SET default_transaction_read_only = on")
    text = _fails(PostgresJournal(pg_url), "read-only", postgres.password, caplog)
    assert "read-only" in text


def test_a_schema_from_a_newer_version_is_refused(
    pg_url: str, postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    PostgresJournal(pg_url).recent()
    _sql(pg_url, "UPDATE wavespeed_schema SET version = 99")
    text = _fails(PostgresJournal(pg_url), "unavailable", postgres.password, caplog)
    assert "newer version" in text and "schema 99" in text


def test_a_dropped_connection_is_replaced_on_the_next_use(pg_url: str) -> None:
    journal = PostgresJournal(pg_url)
    journal.record_submitted("task-1", model="m", params=PARAMS, price_usd=0.08)
    database = pg_url.rsplit("/", 1)[1]
    _sql(
        pg_url.rsplit("/", 1)[0] + "/postgres",
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}' "
        "AND pid <> pg_backend_pid()",
    )
    assert [r.request_id for r in journal.recent()] == ["task-1"]
    journal.close()


def test_only_a_postgresql_url_is_taken(pack: ModuleType) -> None:
    with pytest.raises(pack.wavespeed.core.errors.ConfigError, match="WAVESPEED_JOURNAL_URL must be"):
        PostgresJournal("mysql://user:hunter2secret@db/x")
    assert (
        safe_url("postgresql://u:hunter2secret@h:5/d?password=other")
        == "postgresql://u:***@h:5/d?password=%2A%2A%2A"
    )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(workers=st.integers(2, 5), identities=st.integers(1, 3))
def test_claims_racing_on_separate_connections_give_each_identity_one_owner(
    pg_url: str, workers: int, identities: int
) -> None:
    """Workers (each its own connection) claim the same identities at the same moment: exactly one
    claim per identity is granted; the others see its intent."""
    journals = [PostgresJournal(pg_url) for _ in range(workers)]
    with journals[0].transaction() as conn:
        conn.execute("DELETE FROM intents")
    start = threading.Barrier(workers)
    granted: list[str] = []

    failed: list[BaseException] = []

    def claim(journal: PostgresJournal) -> None:
        start.wait()
        for n in range(identities):
            intent = new_intent("acct", f"ident-{n}", "m", "hash")
            try:
                if journal.claim_intent(intent, max_age_s=None, reuse_statuses=()) is None:
                    granted.append(intent.identity)
            except JournalError as exc:  # a claim must never fail on another's claim
                failed.append(exc)

    threads = [threading.Thread(target=claim, args=(j,)) for j in journals]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failed == [] and sorted(granted) == [f"ident-{n}" for n in range(identities)]
    for journal in journals:
        journal.close()


def test_sqlalchemy_and_psycopg_load_on_the_first_use_of_a_farm_journal(pg_url: str) -> None:
    script = (
        "import sys; from scripts.pack_loader import load_pack; load_pack()\n"
        "from wavespeed_kontext_pack.wavespeed.tasks.journals import current_journal\n"
        "journal = current_journal()\n"
        "before = [m for m in ('sqlalchemy', 'psycopg') if m in sys.modules]\n"
        "journal.recent()\n"
        "print(type(journal).__name__, before, [m for m in ('sqlalchemy', 'psycopg') if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO_ROOT,
        env={**os.environ, "WAVESPEED_JOURNAL_URL": pg_url},
    )  # fmt: skip
    assert out.stdout.split("\n")[-2] == "PostgresJournal [] ['sqlalchemy', 'psycopg']", out.stderr


def test_an_unreadable_row_of_the_inputs_fails_closed_naming_the_database_without_its_password(
    postgres: PostgresServer, pg_url: str
) -> None:
    """As in the SQLite file (test_journal_hostile_disk.py): a row of the inputs looked up that does
    not read may be their paid task, so nothing is paid on a guess; the line names the database by
    its URL without the password."""
    journal = PostgresJournal(pg_url)
    journal.record_submitted(
        "task-farm-1", model="m", params=PARAMS, price_usd=0.08, account="acct", identity_hash="ident"
    )
    _sql(pg_url, "UPDATE tasks SET outputs = '[' WHERE request_id = 'task-farm-1'")
    with pytest.raises(JournalError) as caught:
        journal.claim_intent(
            new_intent("acct", "ident", "m", "hash"), max_age_s=None, reuse_statuses=("in_flight",)
        )
    text = str(caught.value)
    assert caught.value.kind == "corrupt" and "\n" not in text, text
    assert f"{journal.label} has an unreadable row for these inputs (task task-farm-1" in text, text
    assert "force_rerun" in text and postgres.password not in text
    assert journal.get_intent("acct", "ident") is None  # nothing claimed: nothing will be sent
    journal.close()
