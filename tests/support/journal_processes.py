"""Other processes on the same task journal, as other ComfyUIs would be: the helper scripts next to
this module, started the one way every test starts them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
CRASH_WORKER = HERE / "journal_crash_worker.py"
LOCK_HOLDER = HERE / "journal_lock_holder.py"
OPEN_RACER = HERE / "journal_open_racer.py"


def start_worker(*args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """journal_crash_worker.py with ``args`` (PROMPT SEED [--sync] ...) in this environment (with
    ``env`` on top); its stdout and stderr piped for the test to read."""
    return subprocess.Popen(
        [sys.executable, str(CRASH_WORKER), *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextlib.contextmanager
def journal_locked(journal_file: Path, seconds: float) -> Iterator[None]:
    """Another process holds ``journal_file``'s write lock for ``seconds`` or until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, str(LOCK_HOLDER), str(journal_file), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.kill()
        holder.wait()


def kill_when(
    proc: subprocess.Popen[str], ready: Callable[[], bool], within_s: float, what: str
) -> tuple[str, str]:
    """SIGKILL ``proc`` as soon as ``ready()`` (a crash at that point); fail naming ``what`` if it is
    not ready within ``within_s`` or exits first. Its stdout and stderr; it is never left running."""
    try:
        deadline = time.monotonic() + within_s
        while not ready() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ready(), f"{what}: {proc.communicate(timeout=5)}"
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"{what}: it exited by itself ({proc.returncode}): {err}"
    return out, err
