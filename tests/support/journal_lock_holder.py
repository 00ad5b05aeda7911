"""Helper process: hold a SQLite journal's write lock (BEGIN IMMEDIATE) for a while, as another busy
ComfyUI would. Prints "locked" once it holds it, then keeps it SECONDS (or until killed).

Usage: python tests/support/journal_lock_holder.py PATH SECONDS
"""

from __future__ import annotations

import sqlite3
import sys
import time

conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
