"""Issue 17, case 9: an intent whose owner died, whose pid now belongs to another live process, and
whose lease lies in the future (the wall clock jumped back, or a clock ahead wrote it) must not block
a re-queue for the whole intent wait. A real child process claims the intent in a real journal file
and exits; the row is then given the pid of a live unrelated process (pid reuse) and a lease at any
offset from now (the clock jump). ``acquire`` with its deadline already passed answers at once: the
stale intent (the history search / one-line error follows, never a second payment), not
"still submitting". Before the fix every future lease waited the whole wait, then failed."""

from __future__ import annotations

import secrets
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from scripts.pack_loader import REPO_ROOT

STATUSES = ("completed", "in_flight")

CLAIM = """
import sys
sys.path.insert(0, sys.argv[1])
from scripts.pack_loader import load_pack
load_pack()
from wavespeed_kontext_pack.wavespeed.journal import singleflight as sf, task_journal
where = sys.argv[2]
if where.startswith("postgresql://"):
    from wavespeed_kontext_pack.wavespeed.journal.farm.pg_journal import PostgresJournal
    journal = PostgresJournal(where)
else:
    journal = task_journal.Journal(where)
assert journal.claim_intent(sf.new_intent("acct", "ident", "m", "payload"), max_age_s=1e9,
                            reuse_statuses=("completed",)) is None
journal.close()
"""


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def claimed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A journal (a SQLite folder, or a farm's PostgreSQL URL) holding an intent claimed by a
    process that has exited since."""
    if request.param == "sqlite":
        where = str(tmp_path_factory.mktemp("clock") / "journal")
    else:
        where = request.getfixturevalue("postgres").create_database(f"clock_{secrets.token_hex(4)}")
    subprocess.run([sys.executable, "-c", CLAIM, str(REPO_ROOT), where], check=True, timeout=60)
    return where


def _open(pack: ModuleType, where: str) -> Any:
    if where.startswith("postgresql://"):
        return pack.wavespeed.journal.farm.pg_journal.PostgresJournal(where)
    return pack.wavespeed.journal.task_journal.Journal(where)


@pytest.fixture(scope="module")
def unrelated_pid() -> Iterator[int]:
    """A live process that is not the intent's owner: the pid a reuse would hand over."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def _reuse(where: str, pid: int, lease_until: float) -> None:
    """The owner's pid now belongs to ``pid``; the lease says ``lease_until`` (a clock jump)."""
    if where.startswith("postgresql://"):
        with psycopg.connect(where, autocommit=True) as pg:
            pg.execute("UPDATE intents SET pid = %s, lease_until = %s", (pid, lease_until))
        return
    with sqlite3.connect(Path(where) / "journal.sqlite3") as conn:
        conn.execute("UPDATE intents SET pid = ?, lease_until = ?", (pid, lease_until))
    conn.close()


def _acquire_now(pack: ModuleType, where: str) -> Any:
    sf = pack.wavespeed.journal.singleflight
    journal = _open(pack, where)
    try:
        return sf.acquire(
            journal,
            sf.new_intent("acct", "ident", "m", "payload"),
            max_age_s=7 * 86400,
            reuse_statuses=STATUSES,
            deadline=time.monotonic(),  # already due: a wait would raise WaitTimeoutError at once
            cancel=lambda: False,
        )
    finally:
        journal.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offset=st.floats(min_value=-1e7, max_value=1e7, allow_nan=False))
@example(offset=1.0)  # found on main: a lease 1 s ahead blocked the re-queue until the wait ended
@example(offset=3600.0)  # the wall clock jumped back an hour
@example(offset=-5.0)
def test_a_reused_pid_with_a_lease_at_any_offset_is_stale(
    pack: ModuleType, claimed: str, unrelated_pid: int, offset: float
) -> None:
    """On both backends: the SQLite file, and a farm's PostgreSQL journal (the same host here, so
    the pid is checked as it would be on one machine)."""
    _reuse(claimed, unrelated_pid, time.time() + offset)
    got = _acquire_now(pack, claimed)
    assert isinstance(got, pack.wavespeed.journal.task_journal.Intent) and got.pid == unrelated_pid
    assert not pack.wavespeed.journal.singleflight.owner_alive(got)
    assert "may have been paid" in pack.wavespeed.journal.singleflight.interrupted_message(got)


def test_the_owner_itself_stays_alive_whatever_its_lease(pack: ModuleType, claimed: str) -> None:
    """The start token tells the owner apart: a live owner is waited on, even past a clock jump."""
    sf = pack.wavespeed.journal.singleflight
    journal = _open(pack, claimed)
    row = journal.get_intent("acct", "ident")
    journal.close()
    assert row is not None
    me = replace(row, owner=f"someone-else@{sf.process_start(sf.os.getpid())}", pid=sf.os.getpid())
    for offset in (1.0, 3600.0, 1e6):
        assert sf.owner_alive(replace(me, lease_until=time.time() + offset))
    assert not sf.owner_alive(replace(me, lease_until=time.time() - 1))  # frozen: lease not renewed


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offset=st.floats(min_value=-1e7, max_value=1e7, allow_nan=False))
@example(offset=36.0)  # found on main: a lease beyond its maximum length counted as live
@example(offset=3600.0)
def test_another_hosts_lease_counts_only_within_its_length(pack: ModuleType, offset: float) -> None:
    """Where the pid cannot be checked (another host), the lease decides: live only when it lies
    between now and one lease length (plus a little clock slack) ahead."""
    sf = pack.wavespeed.journal.singleflight
    now = time.time()
    intent = replace(
        sf.new_intent("acct", "ident", "m", "payload"),
        owner="another-host",
        host="elsewhere/boot",
        lease_until=now + offset,
    )
    expected = now <= intent.lease_until <= now + sf.LEASE_S + sf.CLOCK_SLACK_S  # float sums round
    assert sf.owner_alive(intent, now=now) is expected
