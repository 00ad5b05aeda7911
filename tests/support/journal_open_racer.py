"""Helper process: wait for a go-file, then open a (new) journal in DIR and read it, as several
ComfyUIs started together would. Prints "ok", or the one-line error.

Usage: python tests/support/journal_open_racer.py DIR GO_FILE
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from scripts.pack_loader import load_pack  # noqa: E402

load_pack()
from wavespeed_kontext_pack.wavespeed.journal.task_journal import Journal  # noqa: E402

go = Path(sys.argv[2])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
try:
    Journal(sys.argv[1]).recent()
    print("ok", flush=True)
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}", flush=True)
