"""Journal cost per submit at 1k, 10k and 100k records: the SQLite journal against the old JSON one.

What a fixed-seed submit does to the journal: one lookup for an identical earlier task (a miss for
new inputs, the common case; a hit on a re-queue), the single-flight claim of the intent row (the
lookup and the claim in one BEGIN IMMEDIATE transaction, dropped again here), and one durable write
of the accepted task. Each figure is the median of repeated calls on a journal already holding N
records (filled in bulk; the old journal's files are written without fsync to save time).

Baseline: the old one-JSON-file-per-task journal, loaded from git (``OLD_REF``) into a throw-away
package and measured in the same run: its lookup scanned every record on each submit, from disk
on the first submit of a process (cold) and through a stat-validated cache afterwards (warm).

Run: ``python bench/bench_journal.py [--quick]``. Figures only; nothing here asserts timings.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import REPO_ROOT, BenchResult, Target, md_table, median  # noqa: E402

OLD_REF = "5966b2a"  # the last commit with the JSON journal
SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000,)
MODEL = "wavespeed-ai/flux-kontext-max/text-to-image"
ACCOUNT = "0123456789abcdef"
LOOKUP_RUNS = 50
RECORD_RUNS = 20
TARGET_LOOKUP_MS = 1.0


def _timed_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return median(times)


def _identity(i: int) -> str:
    return f"{i:064x}"


def _row(i: int, now: float) -> dict[str, Any]:
    return {
        "request_id": f"task{i:08d}",
        "model": MODEL,
        "params": {
            "prompt": f"bench prompt number {i}",
            "seed": i,
            "guidance_scale": 3.5,
            "aspect_ratio": "1:1",
        },
        "params_hash": _identity(i),
        "account": ACCOUNT,
        "submitted_at": now - i,
        "updated_at": now - i,
        "status": "completed",
        "outputs": [f"https://cdn.example/{i}.png"],
        "price_usd": 0.08,
        "inference_ms": 20000,
    }


# ---------------------------------------------------------------------- the SQLite journal


def _fill_sqlite(journal: Any, n: int, now: float) -> None:
    with journal._transaction() as conn:  # bulk fill: one transaction, not n fsyncs
        conn.executemany(
            "INSERT INTO tasks (request_id, model, identity, account, params, submitted_at, updated_at, status, "
            "outputs, price_usd, inference_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    r["request_id"],
                    MODEL,
                    r["params_hash"],
                    ACCOUNT,
                    json.dumps(r["params"]),
                    r["submitted_at"],
                    r["updated_at"],
                    "completed",
                    json.dumps(r["outputs"]),
                    0.08,
                    20000,
                )
                for r in (_row(i, now) for i in range(n))
            ),
        )


def _measure_sqlite(n: int, work: Path) -> dict[str, float]:
    from wavespeed_kontext_pack.wavespeed.journal.singleflight import new_intent
    from wavespeed_kontext_pack.wavespeed.journal.task_journal import Journal

    journal = Journal(work / f"sqlite-{n}")
    now = time.time()
    _fill_sqlite(journal, n, now)
    statuses = ("completed", "in_flight")
    hit = _identity(n // 2)
    assert journal.find_completed(hit, account=ACCOUNT, statuses=statuses) is not None
    miss_ms = _timed_ms(
        lambda: journal.find_completed("f" * 64, account=ACCOUNT, statuses=statuses), LOOKUP_RUNS
    )
    hit_ms = _timed_ms(lambda: journal.find_completed(hit, account=ACCOUNT, statuses=statuses), LOOKUP_RUNS)
    intent = new_intent(ACCOUNT, "e" * 64, MODEL, "d" * 64)

    def claim() -> None:
        assert journal.claim_intent(intent, max_age_s=7 * 86400, reuse_statuses=statuses) is None
        journal.drop_intent(ACCOUNT, intent.identity)

    claim_ms = _timed_ms(claim, LOOKUP_RUNS)
    counter = iter(range(10**9))

    def record() -> None:
        i = next(counter)
        journal.record_submitted(
            f"new{i:08d}", model=MODEL, params={"prompt": "new", "seed": i}, price_usd=0.08, account=ACCOUNT
        )

    record_ms = _timed_ms(record, RECORD_RUNS)
    journal.close()
    return {"miss_ms": miss_ms, "hit_ms": hit_ms, "claim_ms": claim_ms, "record_ms": record_ms}


# ---------------------------------------------------------------------- the old JSON journal


def _load_old(work: Path) -> ModuleType | None:
    """The old journal module from git, as ``oldjournal.journal``; None without git history."""
    package = work / "oldjournal"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("journal.py", "errors.py"):
        try:
            source = subprocess.run(
                ["git", "-C", str(REPO_ROOT), "show", f"{OLD_REF}:wavespeed/{name}"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        except (OSError, subprocess.CalledProcessError):
            return None
        (package / name).write_text(source)
    sys.path.insert(0, str(work))
    try:
        return importlib.import_module("oldjournal.journal")
    finally:
        sys.path.remove(str(work))


def _measure_old(old: ModuleType, n: int, work: Path) -> dict[str, float]:
    directory = work / f"json-{n}"
    tasks = directory / "tasks"
    tasks.mkdir(parents=True)
    now = time.time()
    for i in range(n):
        row = _row(i, now)
        (tasks / f"{row['request_id']}.json").write_text(json.dumps({"schema": 1, **row}))
    statuses = ("completed", "in_flight")

    def cold() -> None:
        old.Journal(directory).find_completed("f" * 64, account=ACCOUNT, statuses=statuses)

    cold_ms = _timed_ms(cold, 1 if n >= 10_000 else 3)
    journal = old.Journal(directory)
    journal._last_prune = time.time()  # the hourly prune would read every file once more
    journal.find_completed("f" * 64, account=ACCOUNT, statuses=statuses)  # fill the cache
    runs = 3 if n >= 10_000 else 10
    miss_ms = _timed_ms(lambda: journal.find_completed("f" * 64, account=ACCOUNT, statuses=statuses), runs)
    counter = iter(range(10**9))

    def record() -> None:
        i = next(counter)
        journal.record_submitted(
            f"new{i:08d}", model=MODEL, params={"prompt": "new", "seed": i}, price_usd=0.08, account=ACCOUNT
        )

    record_ms = _timed_ms(record, RECORD_RUNS // 2)
    shutil.rmtree(directory, ignore_errors=True)
    return {"cold_ms": cold_ms, "miss_ms": miss_ms, "record_ms": record_ms}


# ---------------------------------------------------------------------- the part


def _ms(value: float) -> str:
    if value != value:  # NaN: not measured
        return "-"
    return f"{value:.3f} ms" if value < 10 else f"{value:.0f} ms"


def _ratio(value: float) -> str:
    return "-" if value != value else f"{value:.0f}x" if value >= 10 else f"{value:.1f}x"


def run(quick: bool = False, sizes: tuple[int, ...] | None = None, baseline: bool = True) -> BenchResult:
    t0 = time.monotonic()
    sizes = sizes or (QUICK_SIZES if quick else SIZES)
    rows: list[dict[str, Any]] = []
    nan = float("nan")
    with tempfile.TemporaryDirectory(prefix="wavespeed-bench-journal-") as tmp:
        work = Path(tmp)
        old = _load_old(work) if baseline else None
        for n in sizes:
            new = _measure_sqlite(n, work)
            before = _measure_old(old, n, work) if old is not None else {}
            rows.append(
                {
                    "records": n,
                    **new,
                    "old_cold_ms": before.get("cold_ms", nan),
                    "old_miss_ms": before.get("miss_ms", nan),
                    "old_record_ms": before.get("record_ms", nan),
                    "lookup_speedup": before.get("miss_ms", nan) / new["miss_ms"],
                    # what a new fixed-seed submit costs the journal: lookup (old) or claim (new), then record
                    "submit_speedup": (before.get("miss_ms", nan) + before.get("record_ms", nan))
                    / (new["claim_ms"] + new["record_ms"]),
                }
            )
    table = md_table(
        [
            "records",
            "lookup, miss",
            "lookup, hit",
            "claim intent",
            "record task",
            "old: 1st lookup",
            "old: lookup",
            "old: record",
            "lookup old/new",
            "submit old/new",
        ],
        [
            [
                f"{r['records']:,}",
                _ms(r["miss_ms"]),
                _ms(r["hit_ms"]),
                _ms(r["claim_ms"]),
                _ms(r["record_ms"]),
                _ms(r["old_cold_ms"]),
                _ms(r["old_miss_ms"]),
                _ms(r["old_record_ms"]),
                _ratio(r["lookup_speedup"]),
                _ratio(r["submit_speedup"]),
            ]
            for r in rows
        ],
        align="rrrrrrrrrr",
    )
    largest = rows[-1]
    notes = [
        "lookup: find_completed for an identity (miss = new inputs, the usual submit; hit = a re-queue); "
        "claim intent: the single-flight BEGIN IMMEDIATE transaction (lookup + insert) plus its delete; "
        "record task: record_submitted, one fsync'd WAL commit (synchronous=FULL). submit old/new: the "
        "journal work of one new fixed-seed submit, (old lookup + old record) / (claim + record).",
        f"old: the JSON journal of commit {OLD_REF} in the same run; '1st lookup' is the first submit "
        "of a process (reads every file), 'lookup' a later one (stats every file through its cache). "
        "The old record cost excludes its hourly prune, which reads every file again.",
    ]
    return BenchResult(
        name="journal",
        title="6. Journal: lookup and record cost by journal size",
        tables=[table],
        rows=rows,
        targets=[
            Target(
                f"journal lookup <= {TARGET_LOOKUP_MS:g} ms at {largest['records']:,} records",
                largest["miss_ms"] <= TARGET_LOOKUP_MS,
                _ms(largest["miss_ms"]),
            )
        ],
        notes=notes,
        seconds=time.monotonic() - t0,
        quick=quick,
    )


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv).markdown())
