"""Windows and macOS by design (issue 19): every Linux-only call on the import and paid paths has a
fallback, run here on Linux by taking the Linux parts away.

* The boot id (/proc) and ``time.CLOCK_BOOTTIME``: a child process loads the pack without them (as on
  macOS and Windows) and uses a real journal in a folder whose path has spaces and non-ASCII
  characters: rows age on the wall clock, the owner token falls back to psutil's start time, and a
  reused pid is still told apart from an intent's owner.
* ``os.kill(pid, 0)`` sends CTRL_C_EVENT on Windows: with ``os.name == "nt"`` the liveness probe asks
  psutil, else ``OpenProcess``/``GetExitCodeProcess`` (a stand-in kernel32 here), and never os.kill.
* Key-file permission bits mean nothing on Windows: no chmod warning there; on POSIX the warning
  names the file, spaces and non-ASCII included.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from scripts.pack_loader import REPO_ROOT

ODD_DIR = "dir with spaces/ünï cødé 日本"

# Runs in a child: take the Linux parts away *before* the pack is imported, then use it for real.
CHILD = r"""
import builtins, io, json, os, subprocess, sys, time
repo, folder, mode = sys.argv[1], sys.argv[2], sys.argv[3]
if hasattr(time, "CLOCK_BOOTTIME"):
    del time.CLOCK_BOOTTIME  # macOS and Windows have no boot clock
starts = {os.getpid(): 1000.5}
if mode == "no-proc":
    # what psutil answers on macOS or Windows, where it needs no /proc (the real one needs it here)
    import types
    class Process:
        def __init__(self, pid):
            self.pid = pid
        def create_time(self):
            return starts[self.pid]
    psutil = types.ModuleType("psutil")
    psutil.Process, psutil.pid_exists = Process, lambda pid: pid in starts
    sys.modules["psutil"] = psutil
    import functools
    real_open = io.open
    def _no_proc(file, *args, **kwargs):
        if str(file).startswith("/proc"):
            raise FileNotFoundError(2, "No such file or directory", str(file))
        return real_open(file, *args, **kwargs)
    # a partial is no descriptor: Python 3.10's pathlib keeps io.open as a class attribute
    builtins.open = io.open = functools.partial(_no_proc)
sys.path.insert(0, repo)
from scripts.pack_loader import load_pack
pack = load_pack()
import importlib
rows, sf, journal_mod = (importlib.import_module(f"{pack.__name__}.wavespeed.journal.{name}")
                         for name in ("rows", "singleflight", "task_journal"))
journal = journal_mod.Journal(folder)
journal.record_submitted("task-odd-path", model="m", params={"p": 1}, price_usd=0.08, status="completed",
                         identity_hash="ident")
now = time.time()
found_soon = journal.find_completed("ident", 3600, now=now + 10)
found_later = journal.find_completed("ident", 3600, now=now + 7200)
sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
starts[sleeper.pid] = 2000.25
try:
    intent = sf.new_intent("acct", "ident", "m", "payload")
    fake_owner = "other@" + sf.OWNER.partition("@")[2][:1] + "12345.000"  # a process started long ago
    from dataclasses import replace
    reused = replace(intent, owner=fake_owner, pid=sleeper.pid, lease_until=now + 3600)
    mine = replace(intent, owner="other@" + sf.process_start(sleeper.pid), pid=sleeper.pid)
    result = {
        "boot_id": rows.BOOT_ID, "boot_s": rows.boot_seconds(), "owner": sf.OWNER,
        "found_soon": found_soon is not None, "found_later": found_later is not None,
        "reused_alive": sf.owner_alive(reused), "owner_alive": sf.owner_alive(mine),
        "db": str(journal.path), "db_exists": journal.path.exists(),
    }
finally:
    sleeper.kill()
    sleeper.wait()
journal.close()
print(json.dumps(result))
"""


def _child(tmp_path: Path, mode: str) -> dict[str, Any]:
    folder = tmp_path / ODD_DIR / "journal"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO_ROOT), str(folder), mode],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["db_exists"] and result["db"].startswith(str(tmp_path / ODD_DIR))
    return result


@pytest.mark.parametrize("mode", ["no-boottime", "no-proc"])
def test_without_the_boot_clock_rows_age_on_the_wall_clock(tmp_path: Path, mode: str) -> None:
    """Without CLOCK_BOOTTIME (and with or without /proc) the boot id is "" and rows age on the
    wall clock. Before the fix a boot id without its clock aged every row of this boot 0 s, so a
    paid task stayed "reusable" forever."""
    result = _child(tmp_path, mode)
    assert result["boot_id"] == "" and result["boot_s"] == 0
    assert result["found_soon"] and not result["found_later"]


def test_without_proc_a_reused_pid_is_told_apart_by_psutil(tmp_path: Path) -> None:
    result = _child(tmp_path, "no-proc")
    assert result["owner"].partition("@")[2].startswith("c")  # psutil's create_time, not /proc ticks
    assert result["reused_alive"] is False and result["owner_alive"] is True


# ---------------------------------------------------------------------- Windows liveness probes


class FakeKernel32:
    """OpenProcess/GetExitCodeProcess/CloseHandle as Windows answers them, for the pids it knows."""

    def __init__(self, alive: set[int], denied: set[int], exited: set[int]) -> None:
        self.alive, self.denied, self.exited = alive, denied, exited
        self.last_error = 0
        self.closed: list[int] = []

    def OpenProcess(self, access: int, inherit: bool, pid: int) -> int:  # noqa: N802  (the Win32 name)
        if pid in self.alive or pid in self.exited:
            return 1000 + pid
        self.last_error = 5 if pid in self.denied else 87  # ACCESS_DENIED, INVALID_PARAMETER
        return 0

    def GetExitCodeProcess(self, handle: int, code: Any) -> int:  # noqa: N802
        code._obj.value = 259 if handle - 1000 in self.alive else 0  # STILL_ACTIVE, or an exit code
        return 1

    def CloseHandle(self, handle: int) -> int:  # noqa: N802
        self.closed.append(handle)
        return 1


@contextmanager
def as_windows() -> Iterator[None]:
    """``os.name == "nt"`` only around the calls under test: pytest itself (its paths, its report of
    a failure) must not run as Windows on Linux, so assertions come after this block."""
    saved = os.name
    os.name = "nt"
    try:
        yield
    finally:
        os.name = saved


def on_windows(*calls: Callable[[], Any]) -> list[Any]:
    with as_windows():
        return [call() for call in calls]


@pytest.fixture
def windows(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKernel32]:
    """No psutil, a stand-in kernel32, and an os.kill that fails the test if called (os.name is set
    to "nt" around each call by ``on_windows``)."""
    import ctypes

    kernel32 = FakeKernel32(alive={4242}, denied={4}, exited={777})

    def no_kill(pid: int, sig: int) -> None:
        raise AssertionError(f"os.kill({pid}, {sig}) called on Windows (CTRL_C_EVENT)")

    monkeypatch.setattr(ctypes, "WinDLL", lambda name, use_last_error=False: kernel32, raising=False)
    monkeypatch.setattr(ctypes, "get_last_error", lambda: kernel32.last_error, raising=False)
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil -> ImportError
    monkeypatch.setattr(os, "kill", no_kill)
    yield kernel32


def test_windows_liveness_uses_openprocess_never_os_kill(pack: ModuleType, windows: FakeKernel32) -> None:
    from dataclasses import replace

    sf = pack.wavespeed.journal.singleflight
    gone = replace(sf.new_intent("acct", "ident", "m", "payload"), owner="other", pid=31337)
    alive = on_windows(*(lambda pid=pid: sf.pid_alive(pid) for pid in (4242, 4, 777, 31337, 0)))
    # running; another user's (System): exists; exited (a handle still open somewhere); none; 0
    assert alive == [True, True, False, False, False]
    assert len(windows.closed) == 2  # every handle opened is closed
    # an intent of this host whose owner is gone is stale at once, with no os.kill anywhere
    assert on_windows(lambda: sf.owner_alive(gone)) == [False]


def test_windows_liveness_prefers_psutil(
    pack: ModuleType, windows: FakeKernel32, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[int] = []
    fake = SimpleNamespace(pid_exists=lambda pid: asked.append(pid) or pid == 4242)
    monkeypatch.setitem(sys.modules, "psutil", fake)
    sf = pack.wavespeed.journal.singleflight
    assert on_windows(lambda: sf.pid_alive(4242), lambda: sf.pid_alive(31337)) == [True, False]
    assert asked == [4242, 31337] and windows.closed == []


# ---------------------------------------------------------------------- key file


@pytest.fixture
def odd_key_file(tmp_path: Path) -> Path:
    path = tmp_path / ODD_DIR / "api key ü.txt"
    path.parent.mkdir(parents=True)
    path.write_text("WAVESPEED_API_KEY=ws-odd-path-key-0123456789\n", encoding="utf-8")
    path.chmod(0o644)  # readable by others
    return path


def _warnings(
    pack: ModuleType,
    caplog: pytest.LogCaptureFixture,
    key_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    windows: bool = False,
) -> tuple[str, list[str]]:
    config = importlib.import_module(f"{pack.__name__}.wavespeed.settings.config")
    config._warned_files.discard(str(key_file))
    if windows:  # config's own view of os only: pathlib cannot make a WindowsPath on Linux
        monkeypatch.setattr(config, "os", SimpleNamespace(**{**vars(os), "name": "nt"}))
    with caplog.at_level(logging.WARNING, logger="wavespeed"):
        key = config.resolve_api_key({config.ENV_CONFIG_FILE: str(key_file)})
    return key, [r.getMessage() for r in caplog.records if "readable by other users" in r.getMessage()]


def test_key_file_with_spaces_and_non_ascii_warns_on_posix(
    pack: ModuleType, caplog: pytest.LogCaptureFixture, odd_key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, warned = _warnings(pack, caplog, odd_key_file, monkeypatch)
    assert key == "ws-odd-path-key-0123456789"
    assert len(warned) == 1 and str(odd_key_file) in warned[0] and "chmod 600" in warned[0]


def test_key_file_permission_bits_are_not_checked_on_windows(
    pack: ModuleType, caplog: pytest.LogCaptureFixture, odd_key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, warned = _warnings(pack, caplog, odd_key_file, monkeypatch, windows=True)
    assert key == "ws-odd-path-key-0123456789" and warned == []


def test_journal_in_a_path_with_spaces_and_non_ascii(pack: ModuleType, tmp_path: Path) -> None:
    """The journal's folder, file and intents in such a path, in this process (Linux)."""
    journal = pack.wavespeed.journal.task_journal.Journal(tmp_path / ODD_DIR / "jöurnal")
    sf = pack.wavespeed.journal.singleflight
    assert journal.claim_intent(sf.new_intent("a", "i", "m", "p"), max_age_s=1e9, reuse_statuses=()) is None
    journal.record_submitted(
        "t-odd", model="m", params={}, price_usd=0.08, account="a", identity_hash="i", release_intent=True
    )
    assert journal.get("t-odd") is not None and journal.get_intent("a", "i") is None
    assert journal.path.exists() and ODD_DIR in str(journal.path)
    journal.close()
