"""Several processes opening one new journal file at the same moment (two ComfyUIs started
together, or the racing twins of test_single_flight): switching a new file to WAL can fail "database
is locked" at once, without SQLite's busy wait. Found as a flaky "journal is locked ... nothing was
submitted" in test_two_processes_racing_pay_once; each open now waits as a locked write does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.journal_processes import OPEN_RACER


def test_processes_opening_a_new_journal_together_all_succeed(tmp_path: Path) -> None:
    failures: list[str] = []
    for attempt in range(12):  # a race: several fresh files make it near certain on the old code
        directory, go = tmp_path / f"journal{attempt}", tmp_path / f"go{attempt}"
        racers = [
            subprocess.Popen(
                [sys.executable, str(OPEN_RACER), str(directory), str(go)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(6)
        ]
        for racer in racers:
            assert racer.stdout is not None and racer.stdout.readline().strip() == "ready"
        go.touch()
        outs = [racer.communicate(timeout=60)[0].strip() for racer in racers]
        failures += [out for out in outs if out != "ok"]
    assert failures == [], failures
